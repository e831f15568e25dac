"""Phantom face: determinism, ground truth on the drawn pixels, severity in movement, palsy asymmetry."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from common.protocols import get_protocol
from phantom import layout
from phantom.face import Phantom
from phantom.index_code import read_index
from phantom.script import PHASES, TASK_ACTIONS
from phantom.spec import PROTOCOL_TASKS, SEVERITY_RANGE, PatientSpec

pytestmark = pytest.mark.unit

Landmarks = npt.NDArray[np.float32]
BROWS = list(range(43, 52)) + list(range(97, 106))


def _iod(lm: Landmarks) -> float:
    return float(np.linalg.norm(lm[38] - lm[92]))


def mouth_width(lm: Landmarks) -> float:
    return float(np.linalg.norm(lm[52] - lm[61])) / _iod(lm)


def brow_to_pupil(lm: Landmarks) -> float:
    return float(lm[[38, 92], 1].mean() - lm[BROWS, 1].mean()) / _iod(lm)


def brow_to_lower_lid(lm: Landmarks) -> float:
    return float(lm[[33, 87], 1].mean() - lm[BROWS, 1].mean()) / _iod(lm)


def eye_opening(lm: Landmarks) -> float:
    return float(np.linalg.norm(lm[40] - lm[33]) + np.linalg.norm(lm[94] - lm[87])) / _iod(lm)


def inner_lip_gap(lm: Landmarks) -> float:
    return float(np.linalg.norm(lm[62] - lm[60])) / _iod(lm)


def cheek_width(lm: Landmarks) -> float:
    return float(np.linalg.norm(lm[layout.idx("contour_left8")] - lm[layout.idx("contour_right8")])) / _iod(lm)


def nose_wing_drop(lm: Landmarks) -> float:
    wings = [layout.idx("nose_left_contour3"), layout.idx("nose_right_contour3")]
    return float(lm[wings, 1].mean() - lm[[38, 92], 1].mean()) / _iod(lm)


MEASURES: dict[tuple[str, str], Callable[[Landmarks], float]] = {
    ("pfed5", "smile"): mouth_width,
    ("pfed5", "frown"): brow_to_pupil,
    ("pfed5", "squeeze_eyes"): brow_to_lower_lid,
    ("pfed5", "clench_teeth"): inner_lip_gap,
    ("neuroface", "blow"): cheek_width,
    ("neuroface", "kiss"): mouth_width,
    ("neuroface", "brow"): brow_to_pupil,
    ("neuroface", "open"): inner_lip_gap,
    ("neuroface", "spread"): mouth_width,
    ("neuroface", "bigsmile"): mouth_width,
    ("palsy", "raise_brows"): brow_to_pupil,
    ("palsy", "close_eyes_gently"): eye_opening,
    ("palsy", "close_eyes_tightly"): eye_opening,
    ("palsy", "scrunch"): nose_wing_drop,
    ("palsy", "smile"): mouth_width,
    ("palsy", "pucker"): mouth_width,
}


def moving_tasks(protocol: str) -> list[str]:
    """The tasks that ask for a movement (a resting task asks for none)."""
    return [t for t in PROTOCOL_TASKS[protocol] if TASK_ACTIONS[protocol][t]]


def range_of_motion(ph: Phantom) -> dict[str, float]:
    """Per moving task: mean over repetitions of max |measure - idle median| over the non-idle frames."""
    out: dict[str, list[float]] = {}
    for seg in ph.schedule:
        if (ph.spec.protocol, seg.task) not in MEASURES:
            continue
        truths = [ph.truth(i) for i in range(seg.start, seg.end)]
        values = np.array([MEASURES[ph.spec.protocol, seg.task](t.landmarks) for t in truths])
        idle = np.array([t.phase == "idle" for t in truths])
        out.setdefault(seg.task, []).append(float(np.abs(values[~idle] - np.median(values[idle])).max()))
    return {task: float(np.mean(v)) for task, v in out.items()}


def test_same_spec_gives_identical_frames_and_landmarks() -> None:
    spec = PatientSpec(seed=5, protocol="neuroface", severity=2.5, reps=1)
    a, b = Phantom(spec, 320, 240, 15), Phantom(PatientSpec.from_json(spec.to_json()), 320, 240, 15)
    assert a.n_frames == b.n_frames
    assert a.schedule == b.schedule
    for i in (0, a.n_frames // 3, a.n_frames - 1):
        assert np.array_equal(a.render(i), b.render(i))
        assert np.array_equal(a.truth(i).landmarks, b.truth(i).landmarks)
    # rendering out of order gives the same picture as in order
    assert np.array_equal(a.render(3), Phantom(spec, 320, 240, 15).render(3))


def test_different_seeds_give_different_faces() -> None:
    a = Phantom(PatientSpec(seed=1, protocol="pfed5", severity=1, reps=1), 320, 240, 15)
    b = Phantom(PatientSpec(seed=2, protocol="pfed5", severity=1, reps=1), 320, 240, 15)
    assert not np.allclose(a.truth(0).landmarks, b.truth(0).landmarks)
    assert np.abs(a.render(0).astype(int) - b.render(0).astype(int)).mean() > 5


def test_schedule_covers_the_clip_and_truth_matches_it() -> None:
    ph = Phantom(PatientSpec(seed=3, protocol="palsy", severity=1, reps=2), 320, 240, 20)
    sched = ph.schedule
    assert [(s.task, s.rep) for s in sched] == [(t, r) for t in PROTOCOL_TASKS["palsy"] for r in range(2)]
    assert sched[0].start == 0 and sched[-1].end == ph.n_frames
    assert all(a.end == b.start for a, b in itertools.pairwise(sched))
    seg = sched[3]
    phases = [ph.truth(i).phase for i in range(seg.start, seg.end)]
    assert set(phases) == set(PHASES)
    assert phases[0] == "idle" and phases[-1] == "idle"
    order = [p for k, p in enumerate(phases) if k == 0 or p != phases[k - 1]]
    assert order == ["idle", "onset", "hold", "release", "idle"]
    t = ph.truth(seg.start + 1)
    assert (t.task, t.rep, t.severity, t.index) == (seg.task, seg.rep, 1.0, seg.start + 1)
    assert t.landmarks.shape == (106, 2) and t.landmarks.dtype == np.float32
    assert t.t == pytest.approx((seg.start + 1) / 20)


def test_render_is_rgb_with_readable_index_and_bad_indices_fail() -> None:
    ph = Phantom(PatientSpec(seed=0, protocol="pfed5", severity=0, reps=1), 320, 240, 15)
    frame = ph.render(17)
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert read_index(frame) == 17
    with pytest.raises(IndexError):
        ph.render(ph.n_frames)
    with pytest.raises(IndexError):
        ph.truth(-1)
    with pytest.raises(ValueError, match="too small"):
        Phantom(ph.spec, 32, 32, 15)


def _feature_mask(rgb: npt.NDArray[np.uint8], pts: Landmarks, pad: int = 4) -> tuple[npt.NDArray[np.bool_], int, int]:
    """Pixels that differ from the surrounding skin, in the connected parts that touch the feature's outline."""
    x0, y0 = int(np.floor(pts[:, 0].min())) - pad, int(np.floor(pts[:, 1].min())) - pad
    x1, y1 = int(np.ceil(pts[:, 0].max())) + pad + 1, int(np.ceil(pts[:, 1].max())) + pad + 1
    roi = rgb[y0:y1, x0:x1].astype(np.float32)
    skin = np.median(np.concatenate([roi[:, :2].reshape(-1, 3), roi[:, -2:].reshape(-1, 3)]), axis=0)
    differs = (np.linalg.norm(roi - skin, axis=2) > 40).astype(np.uint8)
    _, labels = cv2.connectedComponents(differs, connectivity=8)
    touching: set[int] = set()
    for px, py in pts:
        xi, yi = round(float(px)) - x0, round(float(py)) - y0
        touching |= {int(v) for v in labels[max(0, yi - 1) : yi + 2, max(0, xi - 1) : xi + 2].ravel() if v}
    return np.isin(labels, sorted(touching)), x0, y0


@pytest.mark.parametrize("protocol", sorted(PROTOCOL_TASKS))
def test_eye_and_mouth_corners_sit_on_the_drawn_features(protocol: str) -> None:
    features = [
        (layout.eye_path("left"), 35, 39),
        (layout.eye_path("right"), 89, 93),
        (layout.outer_lip_path(), layout.MOUTH_LEFT_CORNER, layout.MOUTH_RIGHT_CORNER),
    ]
    for seed in (0, 4, 7):
        lo, hi = SEVERITY_RANGE[protocol]
        spec = PatientSpec(seed=seed, protocol=protocol, severity=(lo + hi) / 2, nuisance=False)
        ph = Phantom(spec, 640, 480, 10)
        for i in np.linspace(0, ph.n_frames - 1, 5).astype(int):
            rgb, lm = ph.render(int(i)), ph.truth(int(i)).landmarks
            for path, left, right in features:
                mask, x0, y0 = _feature_mask(rgb, lm[path])
                ys, xs = np.nonzero(mask)
                assert xs.size > 0
                for corner, extreme in ((left, xs.min()), (right, xs.max())):
                    cx, cy = lm[corner]
                    nearest = np.sqrt((xs + x0 - cx) ** 2 + (ys + y0 - cy) ** 2).min()
                    assert nearest <= 1.0, (seed, int(i), corner, nearest)
                    assert abs(extreme + x0 - cx) <= 1.0, (seed, int(i), corner, extreme + x0, cx)


@pytest.mark.parametrize("protocol", sorted(PROTOCOL_TASKS))
def test_range_of_motion_falls_strictly_as_severity_rises(protocol: str) -> None:
    """Every moving task of every protocol shows severity in its movement, nuisance and all (one seed = one person
    with one set of traits and margins, so only severity differs between the clips compared). Closing the eyes
    saturates when the lids meet: an expressive face still closes them fully at palsy grade 1 (House-Brackmann II
    is "complete closure with minimal effort"), so there the first step may be flat within idle micro-motion."""
    lo, hi = SEVERITY_RANGE[protocol]
    protocol_table = get_protocol(protocol)
    for seed in (0, 1):
        roms = [
            range_of_motion(Phantom(PatientSpec(seed, protocol, float(s), reps=2, head_motion=0.0), 320, 240, 12))
            for s in np.arange(lo, hi + 1)
        ]
        for task in moving_tasks(protocol):
            values = [r[task] for r in roms]
            steps = list(itertools.pairwise(values))
            if protocol_table.task(task).eyes_closed:
                assert values[0] > values[1] - 0.01, (seed, task, values)
                steps = steps[1:]
            assert all(a > b for a, b in steps), (seed, task, values)
            assert values[-1] < 0.6 * values[0], (seed, task, values)


def test_range_of_motion_falls_with_a_moving_head_too() -> None:
    mild = range_of_motion(Phantom(PatientSpec(2, "pfed5", 0.0, reps=2), 320, 240, 12))
    severe = range_of_motion(Phantom(PatientSpec(2, "pfed5", 4.0, reps=2), 320, 240, 12))
    assert all(severe[t] < mild[t] for t in moving_tasks("pfed5")), (mild, severe)


def _side_rom(ph: Phantom, task: str) -> tuple[float, float]:
    """(image-left, image-right) peak displacement of the task's key points from the idle median, in IOD units."""
    key = {"smile": ([52], [61]), "raise_brows": (list(range(43, 52)), list(range(97, 106)))}[task]
    seg = next(s for s in ph.schedule if s.task == task)
    truths = [ph.truth(i) for i in range(seg.start, seg.end)]
    idle = np.array([t.phase == "idle" for t in truths])
    out = []
    for pts in key:
        rel = np.array(
            [(t.landmarks[pts] - t.landmarks[[38, 92]].mean(axis=0)).mean(axis=0) / _iod(t.landmarks) for t in truths]
        )
        base = np.median(rel[idle], axis=0)
        out.append(float(np.linalg.norm(rel[~idle] - base, axis=1).max()))
    return out[0], out[1]


@pytest.mark.parametrize("task", ["smile", "raise_brows"])
def test_palsy_grade_weakens_the_named_side(task: str) -> None:
    for seed in (4, 5):
        ratios = []
        for grade in (0, 1, 2, 3):
            spec = PatientSpec(seed, "palsy", grade, palsy_side="left", reps=1, tasks=(task,), head_motion=0.0)
            image_left, image_right = _side_rom(Phantom(spec, 320, 240, 12), task)
            ratios.append(image_right / image_left)  # the patient's left is the image right
        # idle micro-motion and the subject's mild asymmetry make a healthy face's sides differ a little
        assert 0.6 < ratios[0] < 1.6, ratios
        assert all(a > b for a, b in itertools.pairwise(ratios)), ratios
        assert ratios[-1] < 0.35 * ratios[0], ratios
        spec = PatientSpec(seed, "palsy", 3, palsy_side="right", reps=1, tasks=(task,), head_motion=0.0)
        image_left, image_right = _side_rom(Phantom(spec, 320, 240, 12), task)
        assert image_left / image_right < 0.35 / ratios[0]


def test_palsy_droops_the_weak_mouth_corner_at_rest() -> None:
    healthy = Phantom(PatientSpec(4, "palsy", 0, reps=1, head_motion=0.0, nuisance=False), 320, 240, 12).truth(0)
    palsied = Phantom(PatientSpec(4, "palsy", 3, reps=1, head_motion=0.0, nuisance=False), 320, 240, 12).truth(0)
    healthy, palsied = healthy.landmarks, palsied.landmarks
    drop_right = (palsied[61, 1] - palsied[92, 1]) - (healthy[61, 1] - healthy[92, 1])
    drop_left = (palsied[52, 1] - palsied[38, 1]) - (healthy[52, 1] - healthy[38, 1])
    assert drop_right > 2.0 and abs(drop_left) < 0.5
