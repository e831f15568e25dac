"""The demo models trained two tasks at a time in child processes (infra.demo_parallel): both artifacts exist, made
for the real landmarker, with their validation Spearman; the children's own progress bars are off.

The training checked is the test run's one demo training (tests/demo_kit.py: smile and frown, two processes), which
the demo and browser tests then serve; its parent process's stderr is kept whole in ``training.log``."""

from __future__ import annotations

import pytest

from common.manifest import Manifest
from infra.demo_models import DEMO_VERSION, demo_models_dir, landmarker_identity, missing
from infra.demo_parallel import default_workers
from tests.demo_kit import MEDIAPIPE, TASKS, TRAINING_LOG, training_record
from tests.prebuild import Prebuilds

pytestmark = pytest.mark.integration


def test_default_workers_is_one_per_cpu_never_more_than_the_tasks() -> None:
    assert default_workers(1) == 1
    assert 1 <= default_workers(5) <= 5


@pytest.mark.prebuilt("demo")
@pytest.mark.timeout(1500)  # the wait for the run's demo training (started in the background with the run)
@pytest.mark.skipif(not (MEDIAPIPE / "face_landmark.onnx").is_file(), reason="no MediaPipe models (infra/setup.sh)")
def test_two_tasks_train_in_two_processes(prebuilt: Prebuilds) -> None:
    root = prebuilt.wait("demo", timeout_s=1400)
    models = demo_models_dir(root)
    record = training_record(root)
    got, lines = record["spearman"], record["lines"]
    assert len(TASKS) == 2
    assert set(got) == set(TASKS) and all(-1.0 <= v <= 1.0 for v in got.values()), got
    assert sorted(line.split()[0] for line in lines) == sorted(TASKS), lines
    identity = landmarker_identity(MEDIAPIPE)
    assert missing(models, TASKS, identity) == []
    for task in TASKS:
        manifest = Manifest.read(models / "pfed5" / task / DEMO_VERSION)
        assert manifest.task == task and manifest.landmarker == identity
    err = (root / TRAINING_LOG).read_text(errors="replace")
    assert "demo models (2 at a time)" in err  # the training process's bar over the tasks
    assert "epoch" not in err and "landmarking videos" not in err  # the children drew none of theirs
