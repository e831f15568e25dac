"""The trivial baselines reported beside every model: their numbers per clip, signs fitted on training clips only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.baselines import NAMES, baselines, clip_features, fitted_spearman
from trainer.data.cache import CachedClip
from trainer.data.records import ClipRecord


def _clip(tmp_path: Path, name: str, label: float, amplitude: float, n: int) -> CachedClip:
    """A cached clip whose 63 points all move right by ``amplitude * t / (n - 1)`` px over ``n`` frames."""
    traj = np.zeros((n, 63, 5), np.float32)
    traj[:, :, 0] = (amplitude * np.arange(n) / (n - 1))[:, None]
    path = tmp_path / f"{name}.npz"
    np.savez(path, trajectory=traj, frames=np.zeros((n, 4, 4, 3), np.uint8))
    record = ClipRecord(name, name, "smile", label, n, None, None, None, "")
    return CachedClip(record, path)


def test_clip_features_by_hand(tmp_path: Path) -> None:
    # 5 frames moving 0, 1, 2, 3, 4 px: mean distance from frame 0 is 2, the peak frame's mean is 4
    f = clip_features(_clip(tmp_path, "a", 1.0, 4.0, 5))
    assert tuple(f) == NAMES
    assert f == pytest.approx({"clip length": 5.0, "mean displacement": 2.0, "peak displacement": 4.0})


def test_sign_is_fitted_on_training_clips_and_applied_to_test() -> None:
    y = [0.0, 1.0, 2.0, 3.0]
    falling = [{"x": -v} for v in y]  # ranks severity backwards
    assert fitted_spearman(falling, y, falling, y) == {"x": pytest.approx(1.0)}  # the sign flips it
    # The sign comes from the training clips: where test ranks the other way, the baseline scores -1 on test.
    rising = [{"x": v} for v in y]
    assert fitted_spearman(falling, y, rising, y) == {"x": pytest.approx(-1.0)}


def test_baselines_on_cached_clips(tmp_path: Path) -> None:
    # amplitude follows the label, length goes against it: both baselines rank perfectly once their sign is fitted
    train = [_clip(tmp_path, f"tr{i}", float(i), 2.0 + i, 12 - i) for i in range(4)]
    test = [_clip(tmp_path, f"te{i}", float(i), 3.0 + 2 * i, 10 - i) for i in range(3)]
    got = baselines(train, test)
    assert got == pytest.approx({"clip length": 1.0, "mean displacement": 1.0, "peak displacement": 1.0})


def test_no_clips_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one training and one test clip"):
        fitted_spearman([], [], [{"x": 1.0}], [1.0])
