"""The demo's pure parts: severities spread over the scale, task windows of the models' clip length inside each
task's own performance, training cuts that cannot carry severity, the recipe's per-task subjects, and the cache
check that retrains what is missing or made for another landmarker."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from common.manifest import GraphSpec, Manifest, TensorSpec
from infra.demo import DemoOptions, patient_specs, severities
from infra.demo_models import (
    CLIP_FRAMES,
    DEMO_VERSION,
    FPS,
    HEIGHT,
    LIVE_LEAD,
    WIDTH,
    DemoTraining,
    _clips,
    _subjects,
    crop_side,
    missing,
    run_config,
)
from infra.demo_patient import performance, task_marks
from phantom.face import Phantom
from phantom.photo import PHOTOS, photo_face
from trainer.builders import model_config


def test_severities_spread_inside_the_scale() -> None:
    assert severities(1) == [2.0]
    assert severities(2) == [1.0, 3.0]
    assert severities(4) == [0.5, 1.5, 2.5, 3.5]
    assert all(0 < s < 4 for s in severities(16)) and len(set(severities(16))) == 16


def test_patients_keep_their_face_and_move_anew_each_round() -> None:
    a, b = patient_specs(DemoOptions(patients=2), 0), patient_specs(DemoOptions(patients=2), 1)
    assert [s.identity_seed for s in a] == [s.identity_seed for s in b]
    assert [s.seed for s in a] != [s.seed for s in b]
    assert [s.severity for s in a] == [1.0, 3.0] and all(s.protocol == "pfed5" for s in a)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_task_marks_are_model_length_windows_inside_each_tasks_own_performance(seed: int) -> None:
    spec = patient_specs(DemoOptions(patients=1, reps=2, seed=seed), 0)[0]
    performed = performance(spec)
    assert performed.reps >= spec.reps and performed.seed == spec.seed and performed.severity == spec.severity
    ph = Phantom(performed, WIDTH, HEIGHT, FPS)
    marks = task_marks(ph, spec.reps)
    assert [m.frame for m in marks] == sorted(m.frame for m in marks)
    assert len({m.frame for m in marks}) == len(marks)  # no window ends where the next starts: one task at a time
    pairs = list(zip(marks[0::2], marks[1::2], strict=True))
    tasks = list(dict.fromkeys(seg.task for seg in ph.schedule))
    assert [(s.task, s.rep) for s, _ in pairs] == [(t, r) for t in tasks for r in range(spec.reps)]
    for start, end in pairs:
        assert (start.type, end.type, start.task, start.rep) == ("task_start", "task_end", end.task, end.rep)
        assert end.frame - start.frame == CLIP_FRAMES - 1  # the models' clip length, read whole
        segs = [seg for seg in ph.schedule if seg.task == start.task]
        assert segs[0].start <= start.frame and end.frame < segs[-1].end  # inside this task's own performance
        onset = next(i for i in range(segs[start.rep].start, segs[start.rep].end) if ph.truth(i).phase != "idle")
        # where the previous window leaves room, the window starts LIVE_LEAD frames before its repetition's onset
        before = [e for s, e in pairs if s.task == start.task and s.rep == start.rep - 1]
        room = not before or before[0].frame < onset - LIVE_LEAD
        if room and onset - LIVE_LEAD + CLIP_FRAMES <= segs[-1].end - (spec.reps - 1 - start.rep) * CLIP_FRAMES:
            assert start.frame == max(segs[0].start, onset - LIVE_LEAD), (start, onset)
        if start.task != "rest":
            assert any(ph.truth(i).phase != "idle" for i in range(start.frame, end.frame + 1))


def test_a_patient_performs_more_repetitions_only_when_the_windows_need_them() -> None:
    counts = []
    for seed in range(1, 9):
        for spec in patient_specs(DemoOptions(patients=2, reps=2, seed=seed), 0):
            performed = performance(spec)
            counts.append(performed.reps)
            fewer = dataclasses.replace(spec, reps=performed.reps - 1)
            if performed.reps > spec.reps:  # one repetition fewer would leave some task too short for the windows
                with pytest.raises(ValueError, match="do not fit"):
                    task_marks(Phantom(fewer, WIDTH, HEIGHT, FPS), spec.reps)
    assert min(counts) >= 2 and max(counts) > 2, counts


@pytest.mark.parametrize("anywhere", [False, True])
def test_training_cuts_have_one_length_and_no_onset_leak(anywhere: bool) -> None:
    # the onset-aligned (stride 0) and anywhere cuts, with the former recipe's 18-frame clips
    cfg = DemoTraining(per_severity=2, clips=3, anywhere=anywhere, stride=0, clip_frames=18, t_p=0)
    specs = _subjects("smile", cfg, cfg.per_severity, offset=0)
    cuts = list(_clips(specs, cfg))
    assert len(cuts) == len(specs) * cfg.clips
    by_severity: dict[float, list[int]] = {}
    for spec, _, first in cuts:
        ph = Phantom(spec, WIDTH, HEIGHT, FPS)
        assert first >= 0 and first + cfg.clip_frames <= ph.n_frames
        if not anywhere:  # a few frames before the onset, the same leads for every severity
            lead = next(i for i in range(first, ph.n_frames) if ph.truth(i).phase == "onset") - first
            by_severity.setdefault(spec.severity, []).append(lead)
    if not anywhere:
        leads = list(by_severity.values())
        assert all(sorted(x) == sorted(leads[0]) for x in leads), by_severity
    assert len({s.seed for s in specs}) == len(specs)
    assert sorted({s.severity for s in specs}) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert {k: len(list(g)) for k, g in itertools.groupby(sorted(s.severity for s in specs))} == dict.fromkeys(
        [0.0, 1.0, 2.0, 3.0, 4.0], 2
    )


def test_onset_aligned_training_cuts_stay_inside_every_clip_even_when_a_movement_starts_at_once() -> None:
    # The former default training's rest subjects include one whose first movement starts at frame 1, before the
    # clips' lead (a first run of `feqa demo` failed on it with "empty frame range [-1, 17)").
    cfg = DemoTraining(per_severity=3, clips=4, epochs=12, first_seed=7000, clip_frames=18, stride=0, t_p=0)
    specs = _subjects("rest", cfg, cfg.per_severity, offset=1000)
    starts = []
    for spec, _, first in _clips(specs, cfg):
        assert 0 <= first <= Phantom(spec, WIDTH, HEIGHT, FPS).n_frames - cfg.clip_frames, (spec.seed, first)
        starts.append(first)
    assert 0 in starts  # the clamped clip is among them: this set exercises the early movement


def test_missing_models_are_retrained(tmp_path: Path) -> None:
    assert missing(tmp_path, ("smile", "frown"), "mediapipe-facemesh/t1") == ["smile", "frown"]
    broken = tmp_path / "pfed5" / "smile" / DEMO_VERSION
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{not json")
    assert missing(tmp_path, ("smile",), "mediapipe-facemesh/t1") == ["smile"]
    assert dataclasses.replace(DemoTraining(), tasks=("smile",)).tasks == ("smile",)


def _artifact(models: Path, task: str, rgb_size: int) -> None:
    (models / "pfed5" / task / "1").mkdir(parents=True)
    graph = GraphSpec(file="model.onnx", inputs=(TensorSpec("trajectory", ("batch", 16, 63, 5)),),
                      outputs=(TensorSpec("score", ("batch",)), TensorSpec("raw", ("batch",))))  # fmt: skip
    Manifest(name=f"demo_{task}", version="1", family="tramp_former", task=task, protocol="pfed5",
             graphs={"clip": graph}, fps=10.0, t_p=16, rgb_frames=8, rgb_size=rgb_size, rgb_mean=(0.5, 0.5, 0.5),
             rgb_std=(0.2, 0.2, 0.2), label_min=0.0, label_max=4.0).write(models / "pfed5" / task / "1")  # fmt: skip


def test_crops_take_the_side_the_demo_models_share(tmp_path: Path) -> None:
    assert crop_side(tmp_path) == 256  # no models yet: the reference crop
    _artifact(tmp_path, "smile", 32)
    _artifact(tmp_path, "frown", 32)
    assert crop_side(tmp_path) == 32
    _artifact(tmp_path, "rest", 64)  # models disagree: every one resizes the 256 crop itself
    assert crop_side(tmp_path) == 256
    (tmp_path / "pfed5" / "rest" / "1" / "manifest.json").write_text("{not json")
    assert crop_side(tmp_path) == 256


def test_photo_real_training_subjects_wear_every_portrait_alike_at_every_severity() -> None:
    cfg = DemoTraining(per_severity=4, stride=2, clips=5, appearance="photo")
    specs = _subjects("smile", cfg, cfg.per_severity, offset=1000)
    looks: dict[float, list[tuple[str, bool]]] = {}
    for spec in specs:
        assert spec.appearance == "photo" and spec.reps == cfg.clips and spec.tasks == ("smile",)
        face = photo_face(spec.subject_seed, spec.identity)
        looks.setdefault(spec.severity, []).append((face.name, face.mirrored))
    every = sorted(itertools.product(PHOTOS, (False, True)))
    assert all(sorted(v) == every for v in looks.values()), looks  # no portrait leans to one severity
    assert len({s.seed for s in specs}) == len(specs)


def test_a_task_with_its_own_training_gets_it_and_the_others_the_common_one() -> None:
    frown = DemoTraining(per_severity=2, stride=8, epochs=3)
    cfg = DemoTraining(tasks=("smile", "frown"), per_severity=8, stride=4, epochs=8, per_task=(("frown", frown),))
    assert cfg.for_task("frown") == dataclasses.replace(frown, tasks=("frown",), task_subjects=())
    assert cfg.for_task("smile") == dataclasses.replace(cfg, tasks=("smile",), task_subjects=(), per_task=())
    assert (cfg.for_task("smile").per_severity, cfg.for_task("frown").per_severity) == (8, 2)
    lighter = DemoTraining(task_subjects=(("frown", 3),))
    assert (lighter.for_task("smile").per_severity, lighter.for_task("frown").per_severity) == (8, 3)


def test_the_recipe_reads_whole_model_length_clips_of_8_subjects_per_severity_for_every_task() -> None:
    recipe = DemoTraining()
    for task in ("rest", "smile", "frown", "squeeze_eyes", "clench_teeth"):
        one = recipe.for_task(task)
        assert (one.clip_frames, one.t_p, one.stride, one.appearance, one.rgb) == (CLIP_FRAMES, CLIP_FRAMES, 4,
                                                                                    "photo", False)  # fmt: skip
        assert one.per_severity == 8 and one.tasks == (task,) and one.task_subjects == ()
        # the model the trainer builds reads the whole clip, the rest task's too (the micro config gives it 16)
        assert model_config(run_config(one), task).skate.t_p == CLIP_FRAMES
