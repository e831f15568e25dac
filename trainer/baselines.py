"""Trivial baselines every model must beat, fitted and scored on the same clips as the model (design.md §1).

A model's Spearman and MAE mean something only beside what a trivial reading of the same clips gets. Each baseline
is fitted on the training subjects' clips of one expression and scored on the test clips:

- ``constant``: the training labels' median for every clip (the MAE a model gets by knowing nothing; no ranking).
- ``length``: a line through (clip length in frames, label). On a fair dataset it ranks nothing; on the old phantom
  it reached Spearman 0.97.
- ``distance``: one landmark distance per expression (e.g. mouth width over pupil distance for a smile), its range
  over the clip (95th minus 5th percentile), through a line.
- ``kinematics``: a small ridge fit on six hand-made motion features: that distance's range and peak speed, the
  face's overall motion, blinks per second, the median mouth opening and left/right asymmetry.
- ``mean_displacement``: a line through the mean px distance of the 63 trajectory points from their first-frame
  position.
- ``peak_displacement``: a line through the largest per-frame mean of that distance.

All features are read from the model's own input, the [T, 63, 5] trajectory (x, y in 256-crop pixels); the distance
and kinematics features are normalised by the per-frame pupil distance. A line's slope fixes which way a baseline
ranks, so its sign too is fitted on training clips only. :func:`spearman_ceiling` is the highest Spearman any untied
score can reach against the test labels (ties in integer labels cap it below 1).

:func:`clip_baselines` scores them on the trainer's cached clips; :func:`margin_over_baselines` is a model's test
Spearman minus the best ranking baseline's (``constant`` ranks nothing): a model result counts only where it is
positive (``feqa evaluate`` reports both beside every model).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from common.features import TRAMP_POINTS_106
from trainer.metrics import spearman

F64 = npt.NDArray[np.float64]
BASELINES = ("constant", "length", "distance", "kinematics", "mean_displacement", "peak_displacement")
RIDGE_ALPHA = 1.0
_AT = {p: TRAMP_POINTS_106.index(p) for p in set(TRAMP_POINTS_106)}  # 106-index -> first slot of the 63


def _p(*points_106: int) -> list[int]:
    return [_AT[p] for p in points_106]


PUPILS = _p(38, 92)
BROWS = _p(*range(43, 52), *range(97, 106))
LEFT_EYE, RIGHT_EYE = _p(40, 33), _p(94, 87)  # top, bottom of each eye
CORNERS = _p(52, 61)
INNER_LIPS = _p(62, 60)  # upper lip's inner edge, lower lip's inner edge
NOSE_WINGS = _p(78, 84)


def _iod(xy: F64) -> F64:
    out: F64 = np.linalg.norm(xy[:, PUPILS[0]] - xy[:, PUPILS[1]], axis=1) + 1e-6
    return out


def mouth_width(xy: F64) -> F64:
    out: F64 = np.linalg.norm(xy[:, CORNERS[0]] - xy[:, CORNERS[1]], axis=1) / _iod(xy)
    return out


def inner_lip_gap(xy: F64) -> F64:
    out: F64 = np.linalg.norm(xy[:, INNER_LIPS[0]] - xy[:, INNER_LIPS[1]], axis=1) / _iod(xy)
    return out


def brow_height(xy: F64) -> F64:
    out: F64 = (xy[:, PUPILS, 1].mean(axis=1) - xy[:, BROWS, 1].mean(axis=1)) / _iod(xy)
    return out


def eye_opening(xy: F64) -> F64:
    left = np.linalg.norm(xy[:, LEFT_EYE[0]] - xy[:, LEFT_EYE[1]], axis=1)
    right = np.linalg.norm(xy[:, RIGHT_EYE[0]] - xy[:, RIGHT_EYE[1]], axis=1)
    out: F64 = (left + right) / _iod(xy)
    return out


def nose_wing_drop(xy: F64) -> F64:
    out: F64 = (xy[:, NOSE_WINGS, 1].mean(axis=1) - xy[:, PUPILS, 1].mean(axis=1)) / _iod(xy)
    return out


DISTANCES: dict[str, Callable[[F64], F64]] = {
    "mouth_width": mouth_width,
    "inner_lip_gap": inner_lip_gap,
    "brow_height": brow_height,
    "eye_opening": eye_opening,
    "nose_wing_drop": nose_wing_drop,
}
KEY_DISTANCE: dict[str, str] = {
    # pfed5
    "rest": "inner_lip_gap",
    "smile": "mouth_width",
    "frown": "brow_height",
    "squeeze_eyes": "eye_opening",
    "clench_teeth": "inner_lip_gap",
    # neuroface (upper-case task folders are read lower-case)
    "blow": "mouth_width",
    "kiss": "mouth_width",
    "brow": "brow_height",
    "open": "inner_lip_gap",
    "spread": "mouth_width",
    "bigsmile": "mouth_width",
    # palsy
    "raise_brows": "brow_height",
    "close_eyes_gently": "eye_opening",
    "close_eyes_tightly": "eye_opening",
    "scrunch": "nose_wing_drop",
    "pucker": "mouth_width",
}
FEATURES = ("range", "peak_speed", "motion", "blinks_per_s", "mouth_open", "asymmetry")


def key_distance(expression: str) -> Callable[[F64], F64]:
    return DISTANCES[KEY_DISTANCE.get(expression, "mouth_width")]


def _range(v: F64) -> float:
    lo, hi = np.percentile(v, [5, 95])
    return float(hi - lo)


def motion_features(trajectory: npt.NDArray[np.floating], expression: str, fps: float) -> F64:
    """The six hand-made features of one [T, 63, 5] clip (see :data:`FEATURES`)."""
    xy = np.asarray(trajectory, dtype=np.float64)[:, :, :2]
    iod = _iod(xy)
    d = key_distance(expression)(xy)
    speed = float(np.percentile(np.abs(np.diff(d)), 95) * fps) if d.size > 1 else 0.0
    centred = (xy - xy.mean(axis=1, keepdims=True)) / iod[:, None, None]
    motion = float(centred.std(axis=0).mean())
    eye = eye_opening(xy)
    shut = (eye < 0.6 * np.median(eye)).astype(np.int64)
    blinks = float(np.sum(np.diff(shut) == 1)) / max(1e-6, xy.shape[0] / fps)
    mid = xy[:, PUPILS].mean(axis=1)
    reach = []
    for corner in CORNERS:  # how far each mouth corner travels from its median place, relative to the eyes
        rel = (xy[:, corner] - mid) / iod[:, None]
        reach.append(float(np.percentile(np.linalg.norm(rel - np.median(rel, axis=0), axis=1), 95)))
    left, right = reach
    asymmetry = abs(left - right) / max(1e-6, left + right)
    return np.array([_range(d), speed, motion, blinks, float(np.median(inner_lip_gap(xy))), asymmetry])


def displacement(trajectory: npt.NDArray[np.floating]) -> tuple[float, float]:
    """(mean, peak) px distance of the 63 points from their first-frame position: over every frame and point, and
    the largest per-frame mean."""
    xy = np.asarray(trajectory, dtype=np.float64)[:, :, :2]
    moved = np.linalg.norm(xy - xy[0], axis=-1)  # [T, 63]
    return float(moved.mean()), float(moved.mean(axis=1).max())


@dataclasses.dataclass(frozen=True)
class ClipView:
    """What a baseline may look at: the model's trajectory input, the clip's real length, its label."""

    trajectory: npt.NDArray[np.floating]
    n_frames: int
    label: float


@dataclasses.dataclass(frozen=True)
class BaselineScore:
    name: str
    spearman: float
    mae: float


def _line(x: F64, y: F64) -> tuple[float, float]:
    if x.size < 2 or np.ptp(x) == 0:
        return 0.0, float(np.mean(y))
    slope, offset = np.polyfit(x, y, 1)
    return float(slope), float(offset)


def _ridge(x: F64, y: F64, x_test: F64) -> F64:
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    a, b = (x - mean) / std, (x_test - mean) / std
    w = np.linalg.solve(a.T @ a + RIDGE_ALPHA * np.eye(a.shape[1]), a.T @ (y - y.mean()))
    out: F64 = b @ w + y.mean()
    return out


def baseline_predictions(
    train: Sequence[ClipView], test: Sequence[ClipView], expression: str, fps: float
) -> dict[str, F64]:
    """Every baseline's predictions for ``test`` (unclipped), fitted on ``train``."""
    if len(train) < 2 or not test:
        raise ValueError(f"{expression}: baselines need at least 2 training clips and 1 test clip")
    y = np.array([c.label for c in train], dtype=np.float64)
    n_train = np.array([c.n_frames for c in train], dtype=np.float64)
    n_test = np.array([c.n_frames for c in test], dtype=np.float64)
    f_train = np.stack([motion_features(c.trajectory, expression, fps) for c in train])
    f_test = np.stack([motion_features(c.trajectory, expression, fps) for c in test])
    m_train = np.array([displacement(c.trajectory) for c in train], dtype=np.float64)
    m_test = np.array([displacement(c.trajectory) for c in test], dtype=np.float64)

    def line(x: F64, x_test: F64) -> F64:
        slope, offset = _line(x, y)
        out: F64 = slope * x_test + offset
        return out

    return {
        "constant": np.full(len(test), float(np.median(y))),
        "length": line(n_train, n_test),
        "distance": line(f_train[:, 0], f_test[:, 0]),
        "kinematics": _ridge(f_train, y, f_test),
        "mean_displacement": line(m_train[:, 0], m_test[:, 0]),
        "peak_displacement": line(m_train[:, 1], m_test[:, 1]),
    }


def score_baselines(
    train: Sequence[ClipView], test: Sequence[ClipView], expression: str, fps: float, label_range: tuple[float, float]
) -> dict[str, BaselineScore]:
    """Spearman and MAE (predictions clamped to the label scale) of every baseline on ``test``."""
    label = np.array([c.label for c in test], dtype=np.float64)
    out = {}
    for name, pred in baseline_predictions(train, test, expression, fps).items():
        clamped = np.clip(pred, *label_range)
        out[name] = BaselineScore(name, spearman(pred, label), float(np.abs(clamped - label).mean()))
    return out


class _Record(Protocol):
    @property
    def n_frames(self) -> int: ...
    @property
    def label(self) -> float: ...


class _Clip(Protocol):
    """What :func:`clip_baselines` reads of a cached clip (:class:`trainer.data.cache.CachedClip`)."""

    @property
    def record(self) -> _Record: ...
    def trajectory(self) -> npt.NDArray[np.floating]: ...


def clip_views(clips: Sequence[_Clip]) -> list[ClipView]:
    return [ClipView(c.trajectory(), c.record.n_frames, c.record.label) for c in clips]


def clip_baselines(
    train: Sequence[_Clip], test: Sequence[_Clip], expression: str, fps: float, label_range: tuple[float, float]
) -> dict[str, BaselineScore]:
    """:func:`score_baselines` on cached clips: fitted on ``train``, scored on ``test``."""
    return score_baselines(clip_views(train), clip_views(test), expression, fps, label_range)


def margin_over_baselines(model_spearman: float, scores: dict[str, BaselineScore]) -> float:
    """The model's Spearman minus the best ranking baseline's (``constant`` ranks nothing; NaN Spearmans skipped)."""
    ranked = [s.spearman for n, s in scores.items() if n != "constant" and math.isfinite(s.spearman)]
    if not ranked:
        raise ValueError("no baseline ranked the clips (every Spearman undefined)")
    return model_spearman - max(ranked)


def best_baseline(scores: dict[str, BaselineScore]) -> BaselineScore:
    """The baseline with the lowest MAE (the bar a model's MAE must clear)."""
    return min(scores.values(), key=lambda s: s.mae)


def spearman_ceiling(labels: npt.ArrayLike) -> float:
    """The highest Spearman an untied score can reach against ``labels``: a score that orders the clips exactly as
    the labels do, breaking ties arbitrarily (ties get average ranks on the label side only)."""
    y = np.sort(np.asarray(labels, dtype=np.float64))
    if y.size < 2 or np.ptp(y) == 0:
        return 0.0
    return float(np.corrcoef(rankdata(y), np.arange(y.size))[0, 1])
