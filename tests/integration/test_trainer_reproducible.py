"""Training is a function of config and data: two processes with different PYTHONHASHSEED (so any set or dict of
strings iterates differently), each building its own feature cache, give bit-identical weights and metrics.

The two trainings run at once in a build started when the tests are collected (tests/reproducible_runs.py)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.prebuild import Prebuilds
from tests.reproducible_runs import EPOCHS, run_dirs

pytestmark = [pytest.mark.integration, pytest.mark.prebuilt("reproducible"), pytest.mark.timeout(1000)]


def test_two_processes_with_different_hash_seeds_train_identical_weights(prebuilt: Prebuilds) -> None:
    runs = run_dirs(prebuilt.wait("reproducible", timeout_s=900))
    states = [torch.load(r / "smile" / "last.pt", weights_only=False)["model"] for r in runs]
    assert states[0].keys() == states[1].keys()
    differing = [k for k in states[0] if not torch.equal(states[0][k], states[1][k])]
    assert not differing, f"weights differ between the two processes: {differing[:5]}"
    histories = [json.loads((r / "smile" / "history.json").read_text()) for r in runs]
    assert histories[0] == histories[1] and len(histories[0]) == EPOCHS
    summaries = [json.loads((r / "train_summary.json").read_text()) for r in runs]
    assert summaries[0] == summaries[1]
    assert summaries[0]["smile"]["stopped_by_time_budget"] is False
    # the loss moved: the run trained, so equal weights are not two untouched initialisations
    assert histories[0][0]["train_loss"] != histories[0][-1]["train_loss"]
