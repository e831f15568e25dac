"""Time-warp augmentation (``train.time_warp``): a training clip resampled in time keeps how far the face moves
and changes how long each movement takes; evaluation never warps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from trainer.data.cache import CachedClip
from trainer.data.records import ClipRecord
from trainer.data.samples import ClipSamples, sample_spec, time_warp
from trainer.models import trampformer


def _ramp_clip(n: int = 40, onset: int = 10) -> np.ndarray:
    """[n, 63, 5]: every point still until frame 10, then a linear rise over ``onset`` frames to 5 px, held."""
    level = np.clip((np.arange(n) - 10) / onset, 0.0, 1.0) * 5.0
    traj = np.zeros((n, 63, 5), np.float32)
    traj[:, :, 0] = level[:, None]
    traj[:, :, 2:] = 128.0
    return traj


def _rise_frames(traj: np.ndarray) -> int:
    x = traj[:, 0, 0]
    return int(np.count_nonzero((x > 0.25) & (x < 4.75)))


def test_a_warp_rescales_every_duration_and_keeps_the_amplitude() -> None:
    traj = _ramp_clip()
    lengths, rises = [], []
    for seed in range(40):
        warped, source = time_warp(traj, np.random.default_rng(seed), 0.4)
        factor = traj.shape[0] / warped.shape[0]
        assert warped.shape[1:] == traj.shape[1:] and source.shape == (warped.shape[0],)
        assert warped[:, 0, 0].max() == pytest.approx(5.0) and warped[:, 0, 0].min() == pytest.approx(0.0)
        np.testing.assert_allclose(warped[:, :, 2:], 128.0)
        assert source.min() == 0 and source.max() == traj.shape[0] - 1
        # the rise lasts 1 / factor as long (9 frames strictly inside it unwarped), to a frame
        assert abs(_rise_frames(warped) - _rise_frames(traj) / factor) <= 1.5
        lengths.append(warped.shape[0])
        rises.append(_rise_frames(warped))
    assert min(lengths) <= 40 / np.exp(0.3) and max(lengths) >= 40 * np.exp(0.3)  # the speed spreads over x0.67-1.5
    assert len(set(rises)) >= 5


def test_training_items_warp_and_evaluation_items_never_do(tmp_path: Path) -> None:
    path = tmp_path / "clip.npz"
    np.savez(path, trajectory=_ramp_clip())
    record = ClipRecord("c", "s", "smile", 2.0, 40, None, None, None, "train")
    clips = [CachedClip(record, path)]
    mcfg = dataclasses.replace(trampformer.micro(t_p=64), use_rgb=False)
    plain = sample_spec(mcfg, train=True, reverse_p=0.0)
    warped = sample_spec(mcfg, train=True, reverse_p=0.0, time_warp=0.4)
    assert warped.time_warp == 0.4 and sample_spec(mcfg, train=False, time_warp=0.4).time_warp == 0.0
    base = ClipSamples(clips, plain)[0]["trajectory"].numpy()
    seen = [ClipSamples(clips, warped, seed=k)[0]["trajectory"].numpy() for k in range(8)]
    # the same clip, not warped, is the same input every time; warped, its rise takes a different number of frames
    assert all(np.array_equal(ClipSamples(clips, plain, seed=k)[0]["trajectory"].numpy(), base) for k in range(3))
    assert len({_rise_frames(x) for x in seen}) >= 3
    assert all(x.shape == base.shape and x[:, 0, 0].max() == pytest.approx(5.0) for x in seen)
