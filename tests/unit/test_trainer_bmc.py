"""BMC loss against hand-computed values, in the paper's (prediction, label) order."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.bmc import bmc_loss, training_loss

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


def test_bmc_is_lowered_by_stretching_past_the_labels() -> None:
    # why optim.loss offers a squared error: BMC's minimum is not at prediction = label
    label = torch.tensor([0.0, 1.0, 1.0, 2.0, 3.0, 4.0, 4.0])
    stretched = (label - 2.0) * 1.5 + 2.0  # half as far again from the middle
    assert float(bmc_loss(stretched, label)) < float(bmc_loss(label.clone(), label))
    assert float(training_loss("mse", stretched, label)) > float(training_loss("mse", label.clone(), label)) == 0.0


def test_training_loss_names() -> None:
    pred, label = torch.tensor([0.5, 1.0, 3.0]), torch.tensor([0.0, 2.0, 3.0])
    mse = (0.25 + 1.0 + 0.0) / 3
    assert float(training_loss("bmc", pred, label)) == pytest.approx(float(bmc_loss(pred, label)), abs=1e-7)
    assert float(training_loss("mse", pred, label)) == pytest.approx(mse, abs=1e-7)
    both = float(bmc_loss(pred, label, 0.5)) + mse
    assert float(training_loss("bmc_mse", pred, label, 0.5)) == pytest.approx(both, abs=1e-6)
    with pytest.raises(ValueError, match=r"optim\.loss"):
        training_loss("l1", pred, label)
