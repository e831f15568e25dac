"""The trivial baselines reported beside every model: their numbers per clip, fitted on training clips only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.baselines import BASELINES, BaselineScore, clip_baselines, displacement, margin_over_baselines
from trainer.data.cache import CachedClip
from trainer.data.records import ClipRecord


def _clip(tmp_path: Path, name: str, label: float, amplitude: float, n: int) -> CachedClip:
    """A cached clip whose 63 points all move right by ``amplitude * t / (n - 1)`` px over ``n`` frames."""
    traj = np.zeros((n, 63, 5), np.float32)
    traj[:, :, 0] = (amplitude * np.arange(n) / (n - 1))[:, None] + np.arange(63)[None, :]  # points 1 px apart
    path = tmp_path / f"{name}.npz"
    np.savez(path, trajectory=traj, frames=np.zeros((n, 4, 4, 3), np.uint8))
    record = ClipRecord(name, name, "smile", label, n, None, None, None, "")
    return CachedClip(record, path)


def test_displacement_by_hand(tmp_path: Path) -> None:
    # 5 frames moving 0, 1, 2, 3, 4 px: mean distance from frame 0 is 2, the peak frame's mean is 4
    traj, _ = _clip(tmp_path, "a", 1.0, 4.0, 5).load()
    assert displacement(traj) == pytest.approx((2.0, 4.0))


def test_baselines_on_cached_clips_fit_their_sign_on_training_clips(tmp_path: Path) -> None:
    # amplitude follows the label, length goes against it: both rank perfectly once the line's slope is fitted
    train = [_clip(tmp_path, f"tr{i}", float(i), 2.0 + i, 12 - i) for i in range(4)]
    test = [_clip(tmp_path, f"te{i}", float(i), 3.0 + 2 * i, 10 - i) for i in range(3)]
    got = clip_baselines(train, test, "smile", 25.0, (0.0, 4.0))
    assert tuple(got) == BASELINES
    for name in ("length", "mean_displacement", "peak_displacement"):
        assert got[name].spearman == pytest.approx(1.0), name
    assert got["constant"].spearman == 0.0 and got["constant"].mae == pytest.approx(np.mean([1.5, 0.5, 0.5]))
    # where test ranks the other way from training, the fitted sign makes the baseline score -1 on test
    backwards = [_clip(tmp_path, f"bw{i}", float(i), 3.0 + 2 * i, 8 + i) for i in range(3)]
    assert clip_baselines(train, backwards, "smile", 25.0, (0.0, 4.0))["length"].spearman == pytest.approx(-1.0)


def test_margin_is_over_the_best_ranking_baseline() -> None:
    scores = {
        "constant": BaselineScore("constant", 0.0, 0.1),
        "length": BaselineScore("length", 0.2, 1.0),
        "distance": BaselineScore("distance", 0.5, 0.9),
        "kinematics": BaselineScore("kinematics", float("nan"), 0.9),
    }
    assert margin_over_baselines(0.7, scores) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no baseline ranked"):
        margin_over_baselines(0.7, {"constant": scores["constant"]})


def test_too_few_clips_is_an_error(tmp_path: Path) -> None:
    one = [_clip(tmp_path, "a", 1.0, 1.0, 5)]
    with pytest.raises(ValueError, match="at least 2 training clips"):
        clip_baselines(one, one, "smile", 25.0, (0.0, 4.0))
