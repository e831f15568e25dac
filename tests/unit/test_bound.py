"""The information bound: readers of the phantom's hidden truth, fitted on training clips and scored on test clips."""

from __future__ import annotations

import numpy as np
import pytest

from phantom.plan import Cohort, plan_pfed5
from trainer.bound import ORACLES, ClipTruth, score_oracles, truth_of


def _truths(population: str) -> tuple[list[ClipTruth], list[ClipTruth]]:
    clips = [c for c in plan_pfed5(120, 2, 7, Cohort(population=population)) if c.task == "smile"]
    parts: dict[str, list[ClipTruth]] = {"train": [], "test": []}
    for i, c in enumerate(clips):
        parts[c.split].append(truth_of(c.spec, 0, str(i), c.label))
    return parts["train"], parts["test"]


def test_truth_channels_follow_the_severity_model() -> None:
    train, _ = _truths("standard")
    s = np.array([t.latent / 4 for t in train])
    assert np.allclose([t.decay for t in train], 0.3 * s)  # the hold loses 0.3 s of its peak
    amp = np.array([t.amplitude for t in train])
    assert np.corrcoef(amp, s)[0, 1] < -0.5 and amp.min() > 0
    assert all(0.1 < t.ramp_s < 2.0 for t in train)


@pytest.mark.parametrize("population", ["standard", "amplitude"])
def test_amplitude_alone_is_capped_and_the_latent_reader_is_the_floor(population: str) -> None:
    train, test = _truths(population)
    scores = score_oracles(train, test, (0.0, 4.0))
    assert set(scores) == set(ORACLES)
    latent, amp, exact = scores["oracle_latent"], scores["oracle_amplitude"], scores["oracle_all_exact"]
    # every channel exact recovers the latent severity: the rater's noise is all that is left
    assert exact.mae == pytest.approx(latent.mae, abs=0.03) and latent.mae < 0.4
    # expressiveness masks amplitude: an exact amplitude reader stays far above the floor, more so when it varies more
    assert amp.mae > latent.mae + 0.15 and amp.spearman < latent.spearman - 0.05
    if population == "amplitude":
        assert amp.mae > 0.65


def test_too_few_clips_is_a_clear_error() -> None:
    train, test = _truths("standard")
    with pytest.raises(ValueError, match="at least 10 training clips"):
        score_oracles(train[:3], test, (0.0, 4.0))
