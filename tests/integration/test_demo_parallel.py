"""The demo's build command, ``feqa train --demo DIR``, run as a user runs it on a tiny recipe (tests/demo_kit.py):
two tasks trained two at a time in child processes (infra.demo_parallel) give both artifacts, made for the real
landmarker, with the fingerprint and each task's validation Spearman; the children's own progress bars are off; and
the same recipe trained again, in one process, gives the same smile model: the same ONNX graphs byte for byte, and
the same manifest but for its ``created`` time."""

from __future__ import annotations

import dataclasses
import json

import pytest

from common.manifest import Manifest
from infra.demo_models import (
    BUILD_COMMAND,
    DEMO_VERSION,
    TINY_TRAINING,
    fingerprint,
    landmarker_identity,
    missing,
    read_fingerprint,
)
from infra.demo_parallel import default_workers
from tests.demo_kit import BUILD_TASKS, MEDIAPIPE, PARALLEL, SERIAL
from tests.prebuild import Prebuilds

pytestmark = pytest.mark.integration


def test_default_workers_is_one_per_cpu_never_more_than_the_tasks() -> None:
    assert default_workers(1) == 1
    assert 1 <= default_workers(5) <= 5


@pytest.mark.prebuilt("demo")
@pytest.mark.timeout(900)  # the wait for the run's tiny demo build (started in the background with the run)
@pytest.mark.skipif(not (MEDIAPIPE / "face_landmark.onnx").is_file(), reason="no MediaPipe models (infra/setup.sh)")
def test_the_build_command_trains_two_tasks_in_two_processes_and_reproduces(prebuilt: Prebuilds) -> None:
    root = prebuilt.wait("demo", timeout_s=800)
    models = root / PARALLEL
    record = read_fingerprint(models)
    got = record["spearman"]
    assert len(BUILD_TASKS) == 2
    assert set(got) == set(BUILD_TASKS) and all(-1.0 <= v <= 1.0 for v in got.values()), got
    assert record["command"] == BUILD_COMMAND
    assert record["fingerprint"] == fingerprint(dataclasses.replace(TINY_TRAINING, tasks=BUILD_TASKS), MEDIAPIPE)
    identity = landmarker_identity(MEDIAPIPE)
    assert missing(models, BUILD_TASKS, identity) == []
    for task in BUILD_TASKS:
        manifest = Manifest.read(models / "pfed5" / task / DEMO_VERSION)
        assert manifest.task == task and manifest.landmarker == identity
    out = (root / f"{PARALLEL}.log").read_text(errors="replace")
    assert "demo models (2 at a time)" in out  # the building process's bar over the tasks
    assert sorted(t for t in BUILD_TASKS if f"  {t} trained in " in out) == sorted(BUILD_TASKS), out[-2000:]
    assert "epoch" not in out and "landmarking" not in out  # the children drew none of theirs
    # one recipe, one model: the smile trained alone in this process is the same file for file, byte for byte
    serial = root / SERIAL / "pfed5" / "smile" / DEMO_VERSION
    parallel = models / "pfed5" / "smile" / DEMO_VERSION
    names = sorted(p.name for p in parallel.iterdir())
    assert names == sorted(p.name for p in serial.iterdir()) and "model.onnx" in names, names
    graphs = [n for n in names if n.endswith(".onnx")]
    differ = [n for n in graphs if (parallel / n).read_bytes() != (serial / n).read_bytes()]
    assert differ == [], f"the same recipe gave other bytes in {differ}"
    # the manifests are the same but for the time each was written
    a, b = (json.loads((d / "manifest.json").read_text()) for d in (parallel, serial))
    assert a.pop("created") and b.pop("created") and a == b
    assert read_fingerprint(root / SERIAL)["fingerprint"]["recipe"]["smile"] == record["fingerprint"]["recipe"]["smile"]
