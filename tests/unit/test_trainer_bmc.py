"""BMC loss against hand-computed values, in the paper's (prediction, label) order."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.bmc import bmc_loss

pytestmark = pytest.mark.unit


def test_bmc_matches_hand_computed_value() -> None:
    # pred (0, 1), label (0, 2), tau = 2:
    # row 0 logits (0, -2), target 0 -> log(1 + e^-2); row 1 logits (-0.5, -0.5), target 1 -> log 2
    expected = 2.0 * (math.log(1 + math.exp(-2)) + math.log(2)) / 2
    got = bmc_loss(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 2.0]))
    assert float(got) == pytest.approx(expected, abs=1e-6)


def test_bmc_argument_order_matters() -> None:
    pred, label = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 2.0])
    swapped = 2.0 * (math.log(1 + math.exp(-0.5)) + math.log(1 + math.exp(-1.5))) / 2
    assert float(bmc_loss(label, pred)) == pytest.approx(swapped, abs=1e-6)
    assert float(bmc_loss(pred, label)) != pytest.approx(swapped, abs=1e-3)


def test_bmc_batch_of_one_is_zero_and_shapes_are_checked() -> None:
    assert float(bmc_loss(torch.tensor([3.0]), torch.tensor([1.0]))) == 0.0
    with pytest.raises(ValueError, match=r"\[B\]"):
        bmc_loss(torch.zeros(2, 1), torch.zeros(2))
