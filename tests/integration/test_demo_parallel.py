"""The demo models trained two tasks at a time in child processes (infra.demo_parallel): both artifacts exist, made
for the real landmarker, with their validation Spearman; the children's own progress bars are off."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.manifest import Manifest
from infra.demo_models import DEMO_VERSION, DemoTraining, landmarker_identity, missing
from infra.demo_parallel import default_workers, train_parallel

pytestmark = pytest.mark.integration
MEDIAPIPE = Path(__file__).resolve().parents[2] / "models" / "mediapipe"
TINY = DemoTraining(per_severity=1, clips=3, epochs=1, first_seed=8500)  # mechanics only: no ranking is claimed


def test_default_workers_is_one_per_cpu_never_more_than_the_tasks() -> None:
    assert default_workers(1) == 1
    assert 1 <= default_workers(5) <= 5


@pytest.mark.timeout(900)  # two small trainings (about a minute on 2 idle cores; far longer on a shared machine)
@pytest.mark.skipif(not (MEDIAPIPE / "face_landmark.onnx").is_file(), reason="no MediaPipe models (infra/setup.sh)")
def test_two_tasks_train_in_two_processes(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    tasks = ("smile", "frown")
    got = train_parallel(tmp_path, MEDIAPIPE, TINY, tasks, 2, lines.append)
    assert set(got) == set(tasks) and all(-1.0 <= v <= 1.0 for v in got.values()), got
    assert sorted(line.split()[0] for line in lines) == sorted(tasks), lines
    identity = landmarker_identity(MEDIAPIPE)
    assert missing(tmp_path, tasks, identity) == []
    for task in tasks:
        manifest = Manifest.read(tmp_path / "pfed5" / task / DEMO_VERSION)
        assert manifest.task == task and manifest.landmarker == identity
    err = capfd.readouterr().err
    assert "demo models (2 at a time)" in err  # this process's bar over the tasks
    assert "epoch" not in err and "landmarking videos" not in err  # the children drew none of theirs
