"""Batch-based Monte-Carlo (BMC) loss for imbalanced regression (Ren et al., CVPR 2022; models.md §1.7).

L_i = -log( exp(-(p_i - y_i)^2 / tau) / sum_j exp(-(p_i - y_j)^2 / tau) ), tau = 2 sigma^2, averaged over the batch
and scaled by tau. The candidates y_j are the labels of the current batch (duplicates included). Call it as
``bmc_loss(prediction, label)``: the softmax runs over the batch *labels*, as the paper writes it. (The TraMP
reference passes (label, prediction), which makes the softmax run over predictions instead.)

BMC's minimum is not at prediction = label: with ties and a bounded label scale, a batch's lowest and highest clips
lower it further by moving outward (measured: 16 smile clips overfitted by the micro model reached a BMC loss of
3.42, below the 3.92 of a perfect prediction, with predictions spread over -7..10 for labels 0..4). The affine
calibration cannot undo a stretch that grows towards the ends, so :func:`training_loss` also offers a squared error,
whose minimum is the label, alone or added to BMC (``optim.loss``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bmc_loss(prediction: torch.Tensor, label: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """BMC loss of predictions [B] against labels [B] (both 1-D). A batch of one gives 0."""
    if prediction.ndim != 1 or prediction.shape != label.shape:
        raise ValueError(f"prediction and label must both be [B]; got {list(prediction.shape)}, {list(label.shape)}")
    tau = 2.0 * sigma * sigma
    logits = -((prediction[:, None] - label[None, :].to(prediction.dtype)) ** 2) / tau
    target = torch.arange(prediction.shape[0], device=prediction.device)
    return F.cross_entropy(logits, target) * tau


LOSSES = ("bmc", "mse", "bmc_mse")


def training_loss(name: str, prediction: torch.Tensor, label: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """The loss ``optim.loss`` names: ``bmc`` (the paper's), ``mse`` (mean squared error to the label) or
    ``bmc_mse`` (their sum)."""
    if name not in LOSSES:
        raise ValueError(f"optim.loss must be one of {LOSSES}, got {name!r}")
    mse = F.mse_loss(prediction, label.to(prediction.dtype))
    if name == "mse":
        return mse
    bmc = bmc_loss(prediction, label, sigma)
    return bmc if name == "bmc" else bmc + mse


class BMCLoss(nn.Module):
    """Module form of :func:`bmc_loss` with a fixed sigma (the reference never optimises it)."""

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, prediction: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return bmc_loss(prediction, label, self.sigma)
