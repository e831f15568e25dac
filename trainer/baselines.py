"""Trivial one-number baselines a model's test Spearman is reported beside (and must beat), on the same clips.

Each baseline ranks a clip by one number read straight off its cached trajectory, with no learning beyond one sign:

* ``clip length``: frames in the clip (a dataset whose timing follows severity leaks the label through it);
* ``mean displacement``: mean px distance of the 63 trajectory points from their first-frame position;
* ``peak displacement``: the largest per-frame mean of that distance.

Which way a baseline ranks (its sign) is fitted on the training clips only, then applied to the test clips, so a
baseline is as strong as it can honestly be and nothing is fitted on test subjects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trainer.data.cache import CachedClip
from trainer.metrics import spearman

NAMES = ("clip length", "mean displacement", "peak displacement")


def clip_features(clip: CachedClip) -> dict[str, float]:
    """The baselines' numbers for one clip."""
    traj, _ = clip.load()
    xy = traj[:, :, :2]
    moved = np.linalg.norm(xy - xy[0], axis=-1)  # [T, 63] px from the clip's first frame
    return {
        "clip length": float(clip.record.n_frames),
        "mean displacement": float(moved.mean()),
        "peak displacement": float(moved.mean(axis=1).max()),
    }


def fitted_spearman(
    train: Sequence[dict[str, float]],
    y_train: Sequence[float],
    test: Sequence[dict[str, float]],
    y_test: Sequence[float],
) -> dict[str, float]:
    """Test Spearman of each baseline, its sign chosen on the training clips (ties choose +)."""
    if not train or not test:
        raise ValueError("baselines need at least one training and one test clip")
    out: dict[str, float] = {}
    for name in train[0]:
        sign = 1.0 if spearman([f[name] for f in train], list(y_train)) >= 0 else -1.0
        out[name] = spearman([sign * f[name] for f in test], list(y_test))
    return out


def baselines(train: Sequence[CachedClip], test: Sequence[CachedClip]) -> dict[str, float]:
    """Test Spearman of every baseline on ``test``, signs fitted on ``train``."""
    return fitted_spearman(
        [clip_features(c) for c in train],
        [c.record.label for c in train],
        [clip_features(c) for c in test],
        [c.record.label for c in test],
    )
