"""The committed demo models (infra/demo_artifacts) are what the code would build now, and each one serves.

The fingerprint recomputed from the code (recipe, trainer configuration, demo version, camera, landmarker with its
model files' hashes, trajectory layout, the photo-real faces' points) must equal the one the build recorded: any
change there fails this test, naming the rebuild command. Each artifact then loads through the scorer's registry
(which runs every graph once at load) and scores a phantom smile landmarked by the real MediaPipe landmarker through
the scorer's model-input code."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from common.manifest import Manifest
from common.model_input import ObservedClip, model_input
from common.protocols import get_protocol
from infra.demo_models import (
    ARTIFACTS,
    BUILD_COMMAND,
    CLIP_FRAMES,
    DEMO_VERSION,
    FPS,
    HEIGHT,
    WIDTH,
    DemoTraining,
    fingerprint,
    fingerprint_differences,
    fingerprint_mismatch,
    landmarker_identity,
    read_fingerprint,
    unchanged_tasks,
)
from phantom.face import Phantom
from phantom.spec import PatientSpec
from scorer.backends import BackendChoice
from scorer.registry import ModelRegistry

MEDIAPIPE = Path(__file__).resolve().parents[2] / "models" / "mediapipe"
TASKS = get_protocol("pfed5").task_names
needs_mediapipe = pytest.mark.skipif(
    not (MEDIAPIPE / "face_landmark.onnx").is_file(), reason="no MediaPipe models (bash infra/setup.sh)"
)


def test_the_artifacts_are_small_and_every_task_has_one() -> None:
    files = [p for p in ARTIFACTS.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 20 * 2**20, files
    for task in TASKS:
        manifest = Manifest.read(ARTIFACTS / "pfed5" / task / DEMO_VERSION)
        assert (manifest.task, manifest.protocol, manifest.t_p, manifest.fps) == (task, "pfed5", CLIP_FRAMES, FPS)
        assert not manifest.reads_frames  # trajectory only, as the recipe says
    assert set(read_fingerprint(ARTIFACTS)["spearman"]) == set(TASKS)


@needs_mediapipe
def test_the_committed_fingerprint_is_the_one_the_code_computes_now() -> None:
    recorded = read_fingerprint(ARTIFACTS)
    now, then = fingerprint(DemoTraining(), MEDIAPIPE), recorded["fingerprint"]
    differ = fingerprint_differences(now, then)
    assert not differ, (
        f"the committed demo models are stale: their fingerprint differs in {differ}; rebuild them with "
        f"`{BUILD_COMMAND}` and commit infra/demo_artifacts"
    )
    assert recorded["command"] == BUILD_COMMAND
    assert fingerprint_mismatch(ARTIFACTS, DemoTraining(), MEDIAPIPE) == ""


@needs_mediapipe
def test_a_changed_recipe_or_landmarker_model_does_not_fit_the_artifacts(tmp_path: Path) -> None:
    why = fingerprint_mismatch(ARTIFACTS, DemoTraining(epochs=6), MEDIAPIPE)
    assert "recipe" in why and "trainer_config" in why, why
    other = tmp_path / "mediapipe"
    other.mkdir()
    for p in MEDIAPIPE.iterdir():
        if p.is_file():
            (other / p.name).write_bytes(p.read_bytes())
    (other / "iris_landmark.onnx").write_bytes((MEDIAPIPE / "iris_landmark.onnx").read_bytes() + b"\0")
    assert "landmarker" in fingerprint_mismatch(ARTIFACTS, DemoTraining(), other)
    copy = tmp_path / "copy"
    copy.mkdir()
    record = read_fingerprint(ARTIFACTS)
    (copy / "fingerprint.json").write_text(json.dumps(record))
    assert "missing" in fingerprint_mismatch(copy, DemoTraining(), MEDIAPIPE)  # a fingerprint without its models


@needs_mediapipe
def test_a_rebuild_keeps_exactly_the_tasks_whose_recipe_and_configuration_are_unchanged(tmp_path: Path) -> None:
    copy = tmp_path / "artifacts"
    shutil.copytree(ARTIFACTS, copy)
    assert set(unchanged_tasks(copy, fingerprint(DemoTraining(), MEDIAPIPE))) == set(TASKS)
    smile = dataclasses.replace(DemoTraining().for_task("smile"), epochs=6)
    changed = fingerprint(DemoTraining(per_task=(("smile", smile),)), MEDIAPIPE)
    assert set(unchanged_tasks(copy, changed)) == set(TASKS) - {"smile"}
    newer = json.loads(json.dumps(fingerprint(DemoTraining(), MEDIAPIPE)))
    newer["trajectory_layout"]["feature_version"] += 1  # a shared part changed: nothing is kept
    assert unchanged_tasks(copy, newer) == {}
    shutil.rmtree(copy / "pfed5" / "frown")
    assert set(unchanged_tasks(copy, fingerprint(DemoTraining(), MEDIAPIPE))) == set(TASKS) - {"frown"}


@needs_mediapipe
def test_a_trainer_setting_added_after_the_build_fits_only_at_its_default() -> None:
    """A setting the trainer gained after the build (here: one the record lacks) fits at the trainer's default,
    which keeps the former training; at another value, or a recorded setting gone, it does not fit."""
    now = fingerprint(DemoTraining(), MEDIAPIPE)
    then = json.loads(json.dumps(now))
    del then["trainer_config"]["smile"]["train"]["time_warp"]  # recorded before train.time_warp existed
    assert fingerprint_differences(now, then) == []
    changed = json.loads(json.dumps(now))
    changed["trainer_config"]["smile"]["train"]["time_warp"] = 0.4  # a new setting used: another training
    assert fingerprint_differences(changed, then) == ["trainer_config"]
    gone = json.loads(json.dumps(now))
    del gone["trainer_config"]["smile"]["train"]["time_warp"]
    assert fingerprint_differences(gone, now) == ["trainer_config"]  # a recorded setting the code no longer has


def _landmarked_smile(tmp_path: Path) -> ObservedClip:
    from phantom.video import write_video
    from tracker.settings import TrackerSettings
    from trainer.data.landmarking import VideoLandmarking
    from trainer.data.records import ClipRecord

    spec = PatientSpec(31000, "pfed5", 1.0, reps=2, tasks=("smile",), head_motion=0.0, appearance="photo")
    phantom = Phantom(spec, WIDTH, HEIGHT, FPS)
    video = tmp_path / "smile.mp4"
    write_video(phantom, video, start=0, stop=CLIP_FRAMES)
    landmarking = VideoLandmarking(TrackerSettings(landmarker="mediapipe", mediapipe_dir=MEDIAPIPE))
    record = ClipRecord("smile", "s", "smile", 1.0, CLIP_FRAMES, None, None, None, "", video=video)
    (outcome,) = list(landmarking.run([record]))
    assert outcome.clip is not None, outcome.error
    seen = outcome.clip
    times = seen.times if seen.times is not None else np.arange(CLIP_FRAMES) / FPS
    assert seen.face.mean() > 0.9, seen.reasons
    return ObservedClip.build(times, seen.landmarks, seen.colours, seen.face)


@needs_mediapipe
def test_every_artifact_loads_in_the_scorer_and_scores_a_landmarked_phantom(tmp_path: Path) -> None:
    registry = ModelRegistry(ARTIFACTS, BackendChoice(intra_op_threads=1))
    serving = registry.scan()
    assert registry.refused == [] and sorted(serving) == sorted(f"pfed5/{t}" for t in TASKS), registry.refused
    clip = _landmarked_smile(tmp_path)
    identity = landmarker_identity(MEDIAPIPE)
    scores = {}
    for task in TASKS:
        loaded = registry.get("pfed5", task)
        assert loaded is not None and loaded.version == DEMO_VERSION
        assert loaded.manifest.landmarker == identity  # the scorer would withhold windows of another landmarker
        mi = model_input(clip, loaded.model.spec, rgb="uniform")
        out = loaded.model.window.run(loaded.model.window_feeds(mi.trajectory, mi.index_t, None))
        scores[task] = float(out["score"][0])
    assert all(np.isfinite(v) and 0.0 <= v <= 4.0 for v in scores.values()), scores
