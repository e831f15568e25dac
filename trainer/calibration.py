"""Fitting the score calibration: the affine map from the regressor's raw output onto the label scale.

BMC ranks clips well but leaves the raw scores stretched and shifted off the label scale (see
:func:`trainer.metrics.affine_calibration`). After training, the best checkpoint's predictions on the validation
clips are mapped onto their labels by least squares; the map, clamped to the label scale, travels in ``best.pt``
(:class:`trainer.checkpoint.Checkpoint`), into the exported graphs' ``score`` output and into ``manifest.json``.
Test clips are never used. A fit is refused, and the identity (still clamped) is used with ``fitted_on == "none"``,
when there are fewer than :data:`MIN_CLIPS` validation clips, when predictions are not finite or the labels all
equal, or when the fitted scale is not a positive finite number (the model ranks validation backwards or not at all).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from common.manifest import Calibration
from trainer.metrics import affine_calibration

log = logging.getLogger(__name__)

MIN_CLIPS = 4


@dataclasses.dataclass(frozen=True)
class CalibrationFit:
    """A calibration plus how it did on the clips it was fitted on (validation MAE raw vs calibrated)."""

    calibration: Calibration
    val_mae_raw: float
    val_mae_calibrated: float
    note: str  # why the identity was used; empty for a real fit

    def report(self) -> dict[str, Any]:
        """How the fit did on the clips it was fitted on (kept in ``best.pt`` beside the calibration itself)."""
        figures = {"val_mae_raw": self.val_mae_raw, "val_mae_calibrated": self.val_mae_calibrated, "note": self.note}
        return figures | {"fitted_on": self.calibration.fitted_on}


def fit_calibration(
    pred: npt.ArrayLike,
    label: npt.ArrayLike,
    label_range: tuple[float, float],
    what: str = "model",
    source: str = "validation",
) -> CalibrationFit:
    """Fit on held-out predictions and labels (``source``: validation clips, or cross-fitted out-of-fold predictions,
    :mod:`trainer.crossfit`); falls back to the identity (logged as a warning) when unsafe."""
    p, y = np.asarray(pred, dtype=np.float64), np.asarray(label, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"pred and label must be 1-D arrays of equal length, got {p.shape} and {y.shape}")
    lo, hi = label_range
    identity = Calibration.identity(lo, hi)
    note = ""
    cal = identity
    if p.size < MIN_CLIPS:
        note = f"only {p.size} validation clips (at least {MIN_CLIPS} needed)"
    elif not np.isfinite(p).all():
        note = "non-finite validation predictions"
    elif np.ptp(y) == 0:
        note = "every validation clip has the same label: no scale to fit"
    else:
        scale, offset = affine_calibration(p, y)
        if not (math.isfinite(scale) and math.isfinite(offset)) or scale <= 0:
            note = f"fitted scale {scale:.4g} is not positive: the model does not rank validation clips upwards"
        else:
            cal = Calibration(scale, offset, float(lo), float(hi), fitted_on=source, n=int(p.size))
    if note:
        log.warning("%s: no score calibration fitted (%s); using the identity clamped to [%g, %g]", what, note, lo, hi)
    raw_mae = float(np.abs(p - y).mean()) if p.size else float("nan")
    cal_mae = float(np.abs(cal.apply(p) - y).mean()) if p.size else float("nan")
    return CalibrationFit(cal, raw_mae, cal_mae, note)
