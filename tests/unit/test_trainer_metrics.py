"""Evaluation metrics: Spearman with ties, bootstrap intervals, the validation-fitted affine calibration."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.metrics import (
    affine_calibration,
    bootstrap_ci,
    expression_metrics,
    mean_spearman,
    spearman,
    subject_bootstrap_ci,
)

pytestmark = pytest.mark.unit


def test_spearman_is_rank_only_and_zero_for_constant_input() -> None:
    label = np.array([0, 1, 1, 2, 4], dtype=np.float64)
    assert spearman(np.exp(label), label) == pytest.approx(1.0)
    assert spearman(-label, label) == pytest.approx(-1.0)
    assert spearman(np.full(5, 2.0), label) == 0.0


def test_affine_calibration_recovers_scale_and_offset() -> None:
    label = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 2.0])
    pred = 2.5 * label - 3.0  # what BMC leaves: right order, wrong scale and offset
    scale, offset = affine_calibration(pred, label)
    assert scale == pytest.approx(0.4) and offset == pytest.approx(1.2)
    assert np.allclose(scale * pred + offset, label)


def test_affine_calibration_of_constant_predictions_is_an_offset() -> None:
    assert affine_calibration(np.full(3, 5.0), np.array([1.0, 2.0, 3.0])) == (1.0, -3.0)
    with pytest.raises(ValueError, match="non-empty"):
        affine_calibration(np.zeros(0), np.zeros(0))


def test_expression_metrics_and_intervals() -> None:
    rng = np.random.default_rng(0)
    label = np.repeat(np.arange(5.0), 6)
    pred = label + rng.normal(0.0, 0.3, label.size)
    subjects = [f"s{i % 4}" for i in range(label.size)]
    m = expression_metrics("smile", pred, label, subjects, reps=200, seed=1)
    assert m.n == 30 and m.spearman > 0.9
    assert m.spearman_ci[0] <= m.spearman <= m.spearman_ci[1]
    assert m.mae_ci[0] <= m.mae <= m.mae_ci[1] and m.rmse >= m.mae
    assert set(m.per_subject_mae) == {"s0", "s1", "s2", "s3"}
    assert mean_spearman([m, m]) == pytest.approx(m.spearman)
    with pytest.raises(ValueError, match="equal length"):
        expression_metrics("smile", pred, label[:-1], subjects)


def test_subject_bootstrap_resamples_whole_subjects() -> None:
    # four subjects, three clips each, every clip a copy of its subject's one reading: four independent points
    label = np.repeat([0.0, 1.0, 2.0, 3.0], 3)
    pred = np.repeat([0.2, 2.5, 1.0, 3.1], 3)  # one pair of subjects out of order
    subjects = [s for s in "abcd" for _ in range(3)]
    clip_lo, clip_hi = bootstrap_ci(pred, label, "spearman", 500, 0)
    lo, hi = subject_bootstrap_ci(pred, label, subjects, "spearman", 500, 0)
    assert hi - lo > 1.3 * (clip_hi - clip_lo)  # the clip bootstrap counts 12 points where there are 4
    assert lo < 0.2 < spearman(pred, label) <= hi
    assert subject_bootstrap_ci(label + 1, label, subjects, "mae", 200, 0) == pytest.approx((1.0, 1.0))
    with pytest.raises(ValueError, match="equal length"):
        subject_bootstrap_ci(pred, label, subjects[:-1], "spearman", 10, 0)
