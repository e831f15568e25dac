"""common/kinematics.py against the phantom's known motion and against exact synthetic motion."""

from __future__ import annotations

import numpy as np
import pytest

from common.features import FeatureError
from common.kinematics import kinematics
from phantom.face import Phantom
from phantom.spec import PatientSpec
from trainer.metrics import spearman

pytestmark = pytest.mark.unit
FPS = 25.0


def _phantom(protocol: str, task: str, severity: float, seed: int = 1, side: str = "left") -> dict[str, float]:
    spec = PatientSpec(seed=seed, protocol=protocol, severity=severity, reps=1, tasks=(task,), palsy_side=side)
    ph = Phantom(spec, 640, 480, FPS)
    lm = np.stack([ph.truth(i).landmarks for i in range(ph.n_frames)])
    return kinematics(lm, 1_700_000_000.0 + np.arange(ph.n_frames) / FPS)


def _still(n: int) -> np.ndarray:
    ph = Phantom(PatientSpec(seed=2, protocol="pfed5", severity=0.0, head_motion=0.0), 640, 480, FPS)
    return np.repeat(ph.truth(0).landmarks[None].astype(np.float64), n, axis=0)


@pytest.mark.parametrize(("task", "region"), [("raise_brows", "brow"), ("smile", "mouth")])
def test_palsy_asymmetry_points_to_the_weak_side(task: str, region: str) -> None:
    healthy = _phantom("palsy", task, 0.0)
    left_weak = _phantom("palsy", task, 3.0, side="left")
    right_weak = _phantom("palsy", task, 3.0, side="right")
    assert abs(healthy[f"asym_{region}"]) < 0.12
    assert left_weak[f"asym_{region}"] < -0.2 < 0.2 < right_weak[f"asym_{region}"]
    assert left_weak[f"rom_{region}_left"] < left_weak[f"rom_{region}_right"]


@pytest.mark.parametrize(("protocol", "task", "region"), [
    ("pfed5", "smile", "mouth"), ("pfed5", "frown", "brow_left"), ("neuroface", "open", "mouth")])  # fmt: skip
def test_higher_severity_gives_smaller_range_of_motion(protocol: str, task: str, region: str) -> None:
    lo, hi = (0.0, 4.0) if protocol == "pfed5" else (1.0, 5.0)
    severities = np.linspace(lo, hi, 5)
    for seed in (1, 2):
        rom = [_phantom(protocol, task, s, seed=seed)[f"rom_{region}"] for s in severities]
        assert rom[0] > 1.4 * rom[-1], rom
        assert spearman(np.array(rom), severities) < -0.8, rom


def test_measures_do_not_change_when_the_head_moves_or_the_camera_zooms() -> None:
    base = _phantom("pfed5", "smile", 1.0)
    spec = PatientSpec(seed=1, protocol="pfed5", severity=1.0, reps=1, tasks=("smile",))
    ph = Phantom(spec, 640, 480, FPS)
    lm = np.stack([ph.truth(i).landmarks for i in range(ph.n_frames)]).astype(np.float64)
    t = np.arange(ph.n_frames)
    angle = np.deg2rad(8 * np.sin(t / 9))  # rolling, drifting, zooming head
    rot = np.stack([np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)], axis=1).reshape(-1, 2, 2)
    zoom = (1.5 + 0.2 * np.sin(t / 7))[:, None, None]
    moved = np.einsum("tij,tpj->tpi", rot, lm - 320) * zoom + 40 * t[:, None, None]
    got = kinematics(moved, 1_700_000_000.0 + t / FPS)
    for key, value in base.items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_speed_range_blinks_and_mouth_opening_on_exact_motion() -> None:
    n = 101  # 4 s at 25 fps
    pts = _still(n)
    eye = pts[:, 35] - pts[:, 39]
    iod = np.linalg.norm(((pts[0, 89] + pts[0, 93]) - (pts[0, 35] + pts[0, 39])) / 2)
    # the mouth slides 0.3 IOD down at constant speed over 2 s, then stays
    ramp = np.clip(np.arange(n) / FPS / 2.0, 0, 1) * 0.3 * iod
    pts[:, 52:72, 1] += ramp[:, None]
    # two blinks: the upper lids meet the lower lids for 3 frames, at 1 s and at 3 s
    for start in (25, 75):
        for upper, lower in ((40, 33), (41, 36), (42, 37), (94, 87), (95, 90), (96, 91)):
            pts[start : start + 3, upper] = pts[start : start + 3, lower]
    k = kinematics(pts, np.arange(n) / FPS)
    assert k["rom_mouth"] == pytest.approx(0.3 * 0.9, rel=0.05)  # the 5-95 % spread of a ramp that holds half the time
    assert k["speed_mouth"] == pytest.approx(0.15, rel=0.1)  # 0.3 IOD in 2 s
    assert k["rom_nose"] == pytest.approx(0.0, abs=1e-9) and k["speed_nose"] == pytest.approx(0.0, abs=1e-9)
    assert k["blink_rate"] == pytest.approx(2 * 60 / 4.0)
    assert k["duration_s"] == pytest.approx(4.0) and k["frames"] == n
    assert np.linalg.norm(eye[0]) > 0
    still = kinematics(_still(n), np.arange(n) / FPS)
    assert still["blink_rate"] == 0 and "asym_mouth" not in still  # no motion: no ratio of noise
    assert still["mouth_opening"] < 0.05


def test_faceless_frames_are_left_out_and_bad_input_is_refused() -> None:
    n = 50
    pts = _still(n)
    pts[:, 52:72, 1] += np.linspace(0, 5, n)[:, None]
    ts = np.arange(n) / FPS
    holey = pts.copy()
    holey[[5, 6, 30]] = np.nan
    keep = np.setdiff1d(np.arange(n), [5, 6, 30])
    assert kinematics(holey, ts) == pytest.approx(kinematics(pts[keep], ts[keep]))
    assert kinematics(np.full((4, 106, 2), np.nan), np.arange(4.0)) == {"frames": 0.0, "duration_s": 0.0}
    with pytest.raises(FeatureError, match=r"\[T, 106, 2\]"):
        kinematics(np.zeros((4, 68, 2)), np.arange(4.0))
    with pytest.raises(FeatureError, match="non-decreasing"):
        kinematics(pts[:3], np.array([0.0, 2.0, 1.0]))
