"""Scoring clips with a trained model, and fitting its score calibration on validation clips.

:func:`predict` applies the evaluation sampling rules (``trainer.data.samples``: RGB frames spread over the clip,
trajectory loop-padded or latter-truncated, heatmaps centre-cropped). With ``clips > 1`` it instead averages that
many training-style random samples of each clip (QAFE-Net's UNBC-McMaster protocol: 10 random clips per video).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.utils.data import DataLoader

from trainer.calibration import CalibrationFit, fit_calibration
from trainer.data.cache import CachedClip
from trainer.data.samples import ClipSamples, sample_spec


def model_inputs(model: nn.Module, batch: dict[str, torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """The batch's tensors the model takes, in its ``INPUTS`` order, on ``device``."""
    names: tuple[str, ...] = getattr(model, "INPUTS")  # noqa: B009 - every family declares it (trainer.models.base)
    return [batch[name].to(device) for name in names]


@torch.no_grad()
def predict(
    model: nn.Module, clips: list[CachedClip], device: torch.device, batch_size: int = 8, clips_per_item: int = 1
) -> npt.NDArray[np.float32]:
    """Raw scores for ``clips``, in order."""
    model.eval()
    cfg: Any = getattr(model, "cfg")  # noqa: B009
    if not clips:
        return np.zeros(0, dtype=np.float32)
    runs: list[npt.NDArray[np.float32]] = []
    for k in range(max(1, clips_per_item)):
        random = clips_per_item > 1
        ds = ClipSamples(clips, sample_spec(cfg, train=random, reverse_p=0.0, flip_p=0.0), seed=1000 + k)
        out = [model(*model_inputs(model, b, device)).float().cpu().numpy() for b in DataLoader(ds, batch_size)]
        runs.append(np.concatenate(out))
    result: npt.NDArray[np.float32] = np.mean(runs, axis=0).astype(np.float32)
    return result


def labels(clips: list[CachedClip]) -> npt.NDArray[np.float64]:
    return np.array([c.record.label for c in clips], dtype=np.float64)


def calibrate(
    model: nn.Module,
    val: list[CachedClip],
    label_range: tuple[float, float],
    device: torch.device,
    what: str,
    batch_size: int = 8,
    clips_per_item: int = 1,
) -> CalibrationFit:
    """The affine calibration of ``model``'s raw scores, fitted on the validation clips (never on test clips)."""
    pred = predict(model.to(device), val, device, batch_size, clips_per_item)
    return fit_calibration(pred, labels(val), label_range, what=what)
