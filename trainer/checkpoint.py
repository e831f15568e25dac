"""The trainer's own checkpoint: one typed record, written by one function, read back with ``weights_only=True``.

``best.pt`` holds everything needed to rebuild, evaluate and export a model without the run's config: the model
family and config, the weights, the protocol and task it scores, the label range, the frame rate it was trained
at, the landmarker its observations came from, the epoch and validation Spearman it was picked at, the data hash
and the score calibration fitted on validation clips (``None`` only while training is still running).
``last.pt`` (resume state: optimiser, scheduler, history, RNG) is a separate plain dict.

Everything stored is a tensor, number, string, list or dict, so :func:`read` never unpickles code.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.errors import ModelError
from common.manifest import Calibration
from trainer.models.families import model_from_config
from trainer.safeload import read_own

BEST = "best.pt"
LAST = "last.pt"
CHECKPOINT_VERSION = 2
"""1 was the untyped dict of earlier trainers (no family, protocol, fps or landmarker): retrain those runs."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One trained model and what it was trained for."""

    family: str
    model_config: dict[str, Any]
    state: dict[str, torch.Tensor]
    protocol: str  # the dataset layout's protocol (pfed5, neuroface) or benchmark (unbc)
    task: str  # the expression / task this model scores
    label_min: float
    label_max: float
    fps: float  # the frame rate the clips were resampled to for training
    landmarker: str  # name of the landmarker the training observations came from ("+"-joined when mixed)
    epoch: int
    val_spearman: float
    data_hash: str
    calibration: Calibration | None = None
    calibration_report: dict[str, Any] = dataclasses.field(default_factory=dict)  # validation MAE raw/calibrated
    version: int = CHECKPOINT_VERSION

    def model(self) -> nn.Module:
        """The model rebuilt from this record alone, weights loaded strictly, in eval mode."""
        model = model_from_config(self.family, self.model_config)
        try:
            model.load_state_dict(self.state, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"{self.family} {self.task}: checkpoint weights do not fit its own config: {exc}") from exc
        return model.eval()

    def require_calibration(self, path: Path) -> Calibration:
        """The validation-fitted calibration; a checkpoint without one comes from a run that did not finish."""
        if self.calibration is None:
            raise ModelError(
                f"{path} has no score calibration: its training run stopped before the end (calibration is fitted on "
                "the validation clips when an expression finishes). Finish it with `feqa train ... --resume`."
            )
        return self.calibration

    def with_calibration(self, calibration: Calibration, report: dict[str, Any]) -> Checkpoint:
        return dataclasses.replace(self, calibration=calibration, calibration_report=dict(report))


def save(path: Path, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically (the only writer of ``best.pt``)."""
    payload: dict[str, Any] = {
        **{f.name: getattr(ckpt, f.name) for f in dataclasses.fields(ckpt) if f.name not in ("state", "calibration")},
        "state": {k: v.detach().cpu() for k, v in ckpt.state.items()},
        "calibration": None if ckpt.calibration is None else ckpt.calibration.to_dict(),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


_TYPES: dict[str, type | tuple[type, ...]] = {
    "family": str,
    "model_config": dict,
    "state": dict,
    "protocol": str,
    "task": str,
    "label_min": (int, float),
    "label_max": (int, float),
    "fps": (int, float),
    "landmarker": str,
    "epoch": int,
    "val_spearman": (int, float),
    "data_hash": str,
    "calibration_report": dict,
    "version": int,
}


def read(path: Path) -> Checkpoint:
    """A checkpoint written by :func:`save`; :class:`ModelError` for anything else (wrong version, missing field)."""
    raw = read_own(Path(path))
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: not a feqa checkpoint (holds a {type(raw).__name__})")
    version = raw.get("version", 1)
    if version != CHECKPOINT_VERSION:
        old = " (an untyped checkpoint from before family, protocol and fps were recorded: retrain)"
        raise ModelError(f"{path}: checkpoint format {version}, this trainer reads {CHECKPOINT_VERSION}"
                         + (old if version == 1 else ""))  # fmt: skip
    for key, kind in _TYPES.items():
        if not isinstance(raw.get(key), kind):
            raise ModelError(f"{path}: checkpoint field {key!r} is missing or not a {kind}")
    if not all(isinstance(v, torch.Tensor) for v in raw["state"].values()):
        raise ModelError(f"{path}: checkpoint weights are not all tensors")
    cal = raw.get("calibration")
    calibration = Calibration.from_dict(cal) if isinstance(cal, dict) else None
    if cal is not None and calibration is None:
        raise ModelError(f"{path}: calibration is malformed")
    out = Checkpoint(**{k: raw[k] for k in _TYPES}, calibration=calibration)
    if not (math.isfinite(out.label_min) and math.isfinite(out.label_max) and out.label_min < out.label_max):
        raise ModelError(f"{path}: label range [{out.label_min}, {out.label_max}] is empty")
    return out
