"""Batch-based Monte-Carlo (BMC) loss for imbalanced regression (Ren et al., CVPR 2022; models.md §1.7).

L_i = -log( exp(-(p_i - y_i)^2 / tau) / sum_j exp(-(p_i - y_j)^2 / tau) ), tau = 2 sigma^2, averaged over the batch
and scaled by tau. The candidates y_j are the labels of the current batch (duplicates included). Call it as
``bmc_loss(prediction, label)``: the softmax runs over the batch *labels*, as the paper writes it. (The TraMP
reference passes (label, prediction), which makes the softmax run over predictions instead.)
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


class BMCLoss(nn.Module):
    """Module form of :func:`bmc_loss` with a fixed sigma (the reference never optimises it)."""

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, prediction: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return bmc_loss(prediction, label, self.sigma)
