"""A run whose head is dead (the reference's ReLU head with every last hidden unit switched off, the state the
collapsed acceptance run ended in) is stopped by the trainer with an error line, and trained again with another seed
when a restart is allowed; a live run is left alone. Micro trajectory-only model on the fair phantom's smiles.

The three trainings (``feqa train`` with the model builder replaced by :func:`tests.fair_smile_runs.dead_at_seed_0`
for the dead runs) run in the build ``fair-smile`` beside the tests (tests/fair_smile_runs.py), as this test ran
them before, each with the trainer's warnings kept; the tests read what they made."""

from __future__ import annotations

import pytest

from tests import fair_smile_runs as runs
from tests.prebuild import Prebuilds
from trainer import checkpoint

pytestmark = [pytest.mark.integration, pytest.mark.prebuilt("fair-smile")]


def test_a_dead_head_is_stopped_and_restarted_with_another_seed(prebuilt: Prebuilds) -> None:
    built = prebuilt.wait("fair-smile", timeout_s=900)
    stopped = runs.summary(built / runs.DEAD_NO_RESTART)
    assert stopped["dead_output"] is True and stopped["epochs_run"] == 2 and stopped["seed"] == 0
    assert any(
        "dead head, stopping the run (seed 0) after epoch 2" in m for m in runs.logged(built / runs.DEAD_NO_RESTART)
    )

    again = runs.summary(built / runs.DEAD_RESTART)
    assert again["dead_output"] is False and again["restarts"] == 1 and again["seed"] == 1000
    assert again["epochs_run"] == 4 and float(again["val_spearman"]) != 0.0  # type: ignore[arg-type]
    assert any("restart 1 of 1 from scratch with seed 1000" in m for m in runs.logged(built / runs.DEAD_RESTART))
    kept = checkpoint.read(built / runs.DEAD_RESTART / "smile" / "best.pt")
    assert kept.calibration is not None and kept.epoch >= 1


def test_a_live_run_is_not_stopped(prebuilt: Prebuilds) -> None:
    live = runs.summary(prebuilt.wait("fair-smile", timeout_s=900) / runs.LIVE)
    assert live["dead_output"] is False and live["restarts"] == 0 and live["epochs_run"] == 4 and live["seed"] == 0
