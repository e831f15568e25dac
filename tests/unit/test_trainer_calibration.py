"""Fitting the score calibration on validation predictions, and the guards that refuse an unsafe fit."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from common.manifest import Calibration
from trainer.calibration import MIN_CLIPS, fit_calibration

pytestmark = pytest.mark.unit

LABEL = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 2.0, 1.0, 3.0])


def test_fit_maps_stretched_predictions_onto_the_label_scale() -> None:
    pred = 2.5 * LABEL - 3.0  # right order, wrong scale and offset (what BMC leaves)
    fit = fit_calibration(pred, LABEL, (0.0, 4.0))
    cal = fit.calibration
    assert cal.fitted_on == "validation" and cal.n == LABEL.size
    assert cal.scale == pytest.approx(0.4) and cal.offset == pytest.approx(1.2)
    assert (cal.clamp_min, cal.clamp_max) == (0.0, 4.0)
    assert np.allclose(cal.apply(pred), LABEL)
    assert fit.val_mae_raw == pytest.approx(np.abs(pred - LABEL).mean())
    assert fit.val_mae_calibrated == pytest.approx(0.0, abs=1e-9) and fit.note == ""
    report = {"val_mae_raw": fit.val_mae_raw, "val_mae_calibrated": fit.val_mae_calibrated, "note": ""}
    assert fit.report() == report | {"fitted_on": "validation"}
    crossed = fit_calibration(pred, LABEL, (0.0, 4.0), source="cross_fit").calibration
    assert crossed.fitted_on == "cross_fit" and crossed.scale == pytest.approx(0.4)


def test_reversed_predictions_get_the_identity(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="trainer.calibration"):
        fit = fit_calibration(4.0 - LABEL, LABEL, (0.0, 4.0), what="smile")
    assert fit.calibration == Calibration.identity(0.0, 4.0)
    assert fit.calibration.fitted_on == "none" and "not positive" in fit.note
    assert "smile" in caplog.text and "not positive" in caplog.text
    # the identity still clamps: the calibrated MAE is that of the clamped raw output
    assert fit.val_mae_calibrated == pytest.approx(np.abs(np.clip(4.0 - LABEL, 0, 4) - LABEL).mean())


def test_too_few_clips_get_the_identity(caplog: pytest.LogCaptureFixture) -> None:
    few = MIN_CLIPS - 1
    with caplog.at_level(logging.WARNING, logger="trainer.calibration"):
        fit = fit_calibration(2.0 * LABEL[:few], LABEL[:few], (0.0, 4.0))
    assert fit.calibration.fitted_on == "none" and fit.calibration.n == 0
    assert f"only {few} validation clips" in caplog.text
    empty = fit_calibration(np.zeros(0), np.zeros(0), (0.0, 4.0))
    assert empty.calibration == Calibration.identity(0.0, 4.0)


def test_constant_labels_or_broken_predictions_get_the_identity() -> None:
    flat = fit_calibration(LABEL, np.full(LABEL.size, 2.0), (0.0, 4.0))  # scale 0: nothing to rank
    assert flat.calibration.fitted_on == "none" and "same label" in flat.note
    constant_pred = fit_calibration(np.full(LABEL.size, 7.0), LABEL, (0.0, 4.0))  # scale 1 plus an offset
    assert constant_pred.calibration.fitted_on == "validation"
    assert constant_pred.calibration.apply(np.array([7.0]))[0] == pytest.approx(LABEL.mean())
    nan = fit_calibration(np.where(LABEL > 3, np.nan, LABEL), LABEL, (0.0, 4.0))
    assert nan.calibration.fitted_on == "none" and "non-finite" in nan.note
    with pytest.raises(ValueError, match="equal length"):
        fit_calibration(LABEL, LABEL[:-1], (0.0, 4.0))
