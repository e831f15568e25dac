"""common/kinematics.py against the phantom's known motion and against exact synthetic motion."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from common.features import FeatureError
from common.kinematics import (
    MIN_BLINK_WINDOW_S,
    MIN_SYMMETRY_ROM,
    MOUTH,
    REGIONS,
    ROM_POINTS,
    SMOOTH_S,
    face_frame,
    face_points,
    kinematics,
    measures,
)
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


# ------------------------------------------------------------------------------ the one-sort implementation


def _reference(landmarks: np.ndarray, capture_ts: np.ndarray) -> dict[str, float]:
    """The straightforward implementation: a percentile, median or mean call per measure and per region."""
    ts_all = np.asarray(capture_ts, dtype=np.float64)
    pts, ok = face_frame(landmarks)
    pts, ts = pts[ok], ts_all[ok]
    pts[:, MOUTH, 0] -= pts[:, MOUTH, 0].mean(axis=1, keepdims=True)
    duration = float(ts[-1] - ts[0]) if ts.size else 0.0
    out: dict[str, float] = {"frames": float(ts.size), "duration_s": duration}
    if ts.size < 2:
        return out
    smooth = pts
    dt_med = float(np.median(np.diff(ts)))
    k = max(1, round(SMOOTH_S / dt_med) if dt_med > 0 else 1)
    k += (k + 1) % 2
    if ts.size >= 3 and k > 1 and ts.size >= k:
        smooth = np.stack([np.mean(np.concatenate([np.repeat(pts[:1], k // 2, 0), pts,
                                                   np.repeat(pts[-1:], k // 2, 0)])[i : i + k], axis=0)
                           for i in range(ts.size)])  # fmt: skip
    dt = np.diff(ts)
    step = np.linalg.norm(np.diff(smooth, axis=0), axis=-1)
    speed = np.where(dt[:, None] > 0, step / np.where(dt > 0, dt, 1.0)[:, None], np.nan)
    lo, hi = np.percentile(pts, [5, 95], axis=0)
    spread_all = np.linalg.norm(hi - lo, axis=-1)
    rom: dict[str, float] = {}
    for name, idx in REGIONS.items():
        if name in ROM_POINTS:
            rom[name] = float(np.mean(spread_all[list(ROM_POINTS[name])]))
        else:
            rom[name] = float(np.mean(np.sort(spread_all[list(idx)])[::-1][: max(1, len(idx) // 3)]))
        out[f"rom_{name}"] = rom[name]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            region_speed = np.nanmean(speed[:, idx], axis=1)
        if np.isfinite(region_speed).any():
            out[f"speed_{name}"] = float(np.nanpercentile(region_speed, 95))
    for pair in ("brow", "eye", "mouth"):
        left, right = rom[f"{pair}_left"], rom[f"{pair}_right"]
        if max(left, right) >= MIN_SYMMETRY_ROM:
            out[f"asym_{pair}"] = (left - right) / (left + right)
    lids = ((94, 87), (95, 90), (96, 91), (40, 33), (41, 36), (42, 37))
    gap = np.mean([np.linalg.norm(pts[:, u] - pts[:, d], axis=-1) for u, d in lids], axis=0)
    base = float(np.median(gap))
    out["eye_opening"] = base
    if duration >= MIN_BLINK_WINDOW_S:
        closed = gap < 0.5 * base
        blinks = int(np.flatnonzero(closed[1:] & ~closed[:-1]).size) if base > 0 else 0
        out["blink_rate"] = blinks * 60.0 / duration
    out["mouth_opening"] = float(np.percentile(np.linalg.norm(pts[:, 62] - pts[:, 60], axis=-1), 95))
    return out


def _noisy_phantom(n_frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    spec = PatientSpec(seed=seed, protocol="palsy", severity=2.0, reps=1, tasks=("smile",))
    ph = Phantom(spec, 640, 480, FPS)
    lm = np.stack([ph.truth(i % ph.n_frames).landmarks for i in range(n_frames)]).astype(np.float64)
    lm += np.random.default_rng(seed).normal(0, 0.7, lm.shape)
    return lm, 1_700_000_000.0 + np.arange(n_frames) / FPS


@pytest.mark.parametrize("n", [2, 3, 4, 5, 13, 76, 151])
def test_one_sort_measures_equal_the_straightforward_percentiles(n: int) -> None:
    lm, ts = _noisy_phantom(n, seed=n)
    if n > 5:
        lm[[1, n // 2]] = np.nan  # faceless frames
        ts[n // 3 + 1] = ts[n // 3]  # a repeated capture time: no speed for that step
    want, got = _reference(lm, ts), kinematics(lm, ts)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_measures_on_face_points_equal_kinematics_frame_by_frame() -> None:
    lm, ts = _noisy_phantom(60, seed=4)
    lm[[7, 8]] = np.nan
    per_frame = [face_points(lm[i : i + 1]) for i in range(lm.shape[0])]  # one frame at a time, as the scorer does
    pts = np.concatenate([p for p, _ in per_frame])
    ok = np.concatenate([o for _, o in per_frame])
    got, want = measures(pts[ok], ts[ok]), kinematics(lm, ts)
    assert got.keys() == want.keys() and got["frames"] == 58
    for key, value in want.items():  # the last bit may differ: numpy vectorises a batch of frames differently
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    with pytest.raises(FeatureError, match="measures need"):
        measures(pts[ok][:, :50], ts[ok])
