"""Model features from raw observations, shared by the trainer (datasets) and the live scorer (streams).

Pure numpy, no torch: both sides must compute exactly the same numbers. The rules follow the TraMP-Former
reference loader (models.md §1.2-§1.3 and §1.5.2):

* 106 insightface points -> 63 region-major points (7 regions x 9 slots; the mouth corners appear twice).
* Coordinates are offsets from the nose tip (106-index 86) of the clip's **first** frame, in pixels of the 256x256
  crop, unscaled. One constant translation per clip (the reference code's convention; the per-frame crop already
  removes gross head motion). The paper text describes a per-frame offset; we keep the code's rule because it is what
  the published numbers were trained on, and use it in training and inference alike.
* Each point carries 3 colour values (0-255, RGB) sampled at the landmark: the trajectory is [T, 63, 5].
* Short clips are loop-padded from frame 0; long clips keep their latter ``t_p`` frames.
* ``index_t``, the trajectory encoder's time input, describes position **within the window**: ``linspace(-1, 1, t_p)``
  for every clip and every live window, whatever the clip's length or where it started (``time_index="window"``, the
  default). The reference code instead used ``2 * idx / t_p - 1`` with ``idx`` the original frame index, so a
  truncated clip's values run past 1 by an amount set by its length: the model is told how long the clip was, and
  the trained models were shown to read that instead of the face (clip length ranked severity on the old phantom).
  That rule survives only as ``time_index="reference"``, for loading official weights trained with it; it leaks
  clip length and the frame offset of a window into the score.
* Live streams run at any frame rate; :func:`resample_indices` picks frames by capture time at the model's fps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FEATURE_VERSION = 2
"""Bumped whenever any rule in this module changes; the scorer refuses models built on another version.
2: ``index_t`` is position within the window (version 1 used the reference's source-frame rule)."""
TIME_INDEX_RULES = ("window", "reference")
"""``window``: position within the window (default, training and live); ``reference``: the TraMP code's
``2 * frame / t_p - 1`` of source frame numbers, which leaks clip length (only for official weights)."""

NUM_POINTS_106 = 106
NOSE_TIP_106 = 86
PUPILS_106 = (38, 92)  # left, right (phantom.layout: LEFT_PUPIL, RIGHT_PUPIL)
REGIONS = ("left_eye", "left_brow", "right_eye", "right_brow", "nose", "bottom_lip", "upper_lip")
POINTS_PER_REGION = 9

# The 63 points in region-major order, as insightface 106-indices (models.md §1.2).
TRAMP_POINTS_106: tuple[int, ...] = (
    33, 35, 36, 37, 38, 39, 40, 41, 42,  # left eye
    43, 44, 45, 46, 47, 48, 49, 50, 51,  # left brow
    87, 89, 90, 91, 92, 93, 94, 95, 96,  # right eye
    97, 98, 99, 100, 101, 102, 103, 104, 105,  # right brow
    72, 74, 75, 76, 78, 80, 84, 82, 81,  # nose
    52, 54, 60, 57, 61, 58, 59, 56, 55,  # bottom lip
    52, 63, 67, 61, 69, 70, 62, 66, 65,  # upper lip
)  # fmt: skip

# The same 63 points as indices into the 71-entry list of the dataset colour files (73 points minus 34 and 88).
TRAMP_POINTS_71: tuple[int, ...] = (
    0, 1, 2, 3, 4, 5, 6, 7, 8,
    9, 10, 11, 12, 13, 14, 15, 16, 17,
    53, 54, 55, 56, 57, 58, 59, 60, 61,
    62, 63, 64, 65, 66, 67, 68, 69, 70,
    38, 40, 41, 42, 44, 46, 50, 48, 47,
    18, 20, 26, 23, 27, 24, 25, 22, 21,
    18, 29, 33, 27, 35, 36, 28, 32, 31,
)  # fmt: skip

POINTS_73_106: tuple[int, ...] = tuple(range(33, 106))
"""The 73 non-contour points stored in the dataset trajectory files, as 106-indices."""
POINTS_71_106: tuple[int, ...] = tuple(i for i in POINTS_73_106 if i not in (34, 88))
"""The 71-entry list of the dataset colour files, as 106-indices."""

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class FeatureError(ValueError):
    """Input to a feature function has the wrong shape or content; the message says what was expected."""


def _check(arr: npt.NDArray[np.generic], ndim: int, tail: tuple[int, ...], name: str) -> None:
    if arr.ndim != ndim or tuple(arr.shape[-len(tail) :]) != tail:
        raise FeatureError(f"{name}: expected shape [T, {', '.join(map(str, tail))}], got {list(arr.shape)}")
    if arr.shape[0] == 0:
        raise FeatureError(f"{name}: empty clip (0 frames)")


def landmarks_106_from_73(traj73: npt.NDArray[np.generic]) -> FloatArray:
    """Expand a dataset trajectory file ([T, 73, 2], or the [T, 74, >=2] variant) into [T, 106, 2] (contour = NaN)."""
    arr = np.asarray(traj73)
    if arr.ndim == 3 and arr.shape[1] == 74 and arr.shape[2] >= 2:
        arr = arr[:, 1:, :2]
    _check(arr, 3, (73, 2), "trajectory")
    out = np.full((arr.shape[0], NUM_POINTS_106, 2), np.nan, dtype=np.float32)
    out[:, 33:106] = arr
    return out


def colours_106_from_71(colour71: npt.NDArray[np.generic]) -> FloatArray:
    """Expand a dataset colour file ([T, 71, 3]) into [T, 106, 3] (points it lacks = NaN)."""
    arr = np.asarray(colour71)
    _check(arr, 3, (71, 3), "colour")
    out = np.full((arr.shape[0], NUM_POINTS_106, 3), np.nan, dtype=np.float32)
    out[:, list(POINTS_71_106)] = arr
    return out


def select_tramp_points(per_point_106: npt.NDArray[np.generic]) -> FloatArray:
    """Gather the 63 region-major TraMP points from any per-point array [T, 106, C] -> [T, 63, C]."""
    arr = np.asarray(per_point_106)
    if arr.ndim != 3 or arr.shape[1] != NUM_POINTS_106:
        raise FeatureError(f"expected [T, 106, C], got {list(arr.shape)}")
    return arr[:, list(TRAMP_POINTS_106)].astype(np.float32)


def trajectory_features(landmarks_106: npt.NDArray[np.generic], colours_106: npt.NDArray[np.generic]) -> FloatArray:
    """[T, 106, 2] crop-px landmarks and [T, 106, 3] colours -> [T, 63, 5] (x, y anchored at frame-0 nose; r, g, b)."""
    lm = np.asarray(landmarks_106, dtype=np.float32)
    col = np.asarray(colours_106, dtype=np.float32)
    _check(lm, 3, (NUM_POINTS_106, 2), "landmarks")
    _check(col, 3, (NUM_POINTS_106, 3), "colours")
    if lm.shape[0] != col.shape[0]:
        raise FeatureError(f"landmarks have {lm.shape[0]} frames but colours have {col.shape[0]}")
    xy = select_tramp_points(lm) - lm[0, NOSE_TIP_106]
    rgb = select_tramp_points(col)
    out = np.concatenate([xy, rgb], axis=2)
    if not np.isfinite(out).all():
        raise FeatureError("trajectory has non-finite values (missing landmarks or colours in some frame)")
    return out


def trajectory_from_files(traj73: npt.NDArray[np.generic], colour71: npt.NDArray[np.generic]) -> FloatArray:
    """The dataset-file path: [T, 73, 2] trajectory + [T, 71, 3] colour -> [T, 63, 5]."""
    lm = landmarks_106_from_73(traj73)
    col = colours_106_from_71(colour71)
    if lm.shape[0] != col.shape[0]:
        raise FeatureError(f"trajectory has {lm.shape[0]} frames but colour has {col.shape[0]}")
    # The nose tip (86) is among the 73 points and all 63 points among the 71 colours, so no NaN reaches the output.
    return trajectory_features(lm, col)


@dataclass(frozen=True)
class Standardised:
    """Frame indices into the original clip and the matching temporal index fed to the trajectory encoder."""

    indices: IntArray  # [t_p]
    index_t: FloatArray  # [t_p]


def check_time_index(rule: str) -> None:
    if rule not in TIME_INDEX_RULES:
        raise FeatureError(f"time_index must be one of {TIME_INDEX_RULES}, got {rule!r}")


def window_index_t(t_p: int) -> FloatArray:
    """The time input of a ``t_p``-frame window: position within it, -1 at the first frame, 1 at the last."""
    if t_p <= 0:
        raise FeatureError(f"t_p must be positive, got {t_p}")
    out: FloatArray = np.linspace(-1.0, 1.0, t_p, dtype=np.float32) if t_p > 1 else np.zeros(1, np.float32)
    return out


def standardise_length(n_frames: int, t_p: int, time_index: str = "window") -> Standardised:
    """Loop-pad a short clip from frame 0, or keep the latter ``t_p`` frames of a long one (train and test alike);
    ``index_t`` by the ``time_index`` rule (module docstring: ``reference`` leaks clip length)."""
    check_time_index(time_index)
    if n_frames <= 0:
        raise FeatureError(f"clip has {n_frames} frames; need at least 1")
    if t_p <= 0:
        raise FeatureError(f"t_p must be positive, got {t_p}")
    if n_frames < t_p:
        idx = np.arange(t_p, dtype=np.int64) % n_frames
    else:
        idx = np.arange(n_frames - t_p, n_frames, dtype=np.int64)
    if time_index == "window":
        return Standardised(indices=idx, index_t=window_index_t(t_p))
    return Standardised(indices=idx, index_t=(2.0 * idx / t_p - 1.0).astype(np.float32))


def rgb_frame_indices(
    n_frames: int, count: int, *, train: bool = False, rng: np.random.Generator | None = None
) -> IntArray:
    """Frames for the RGB stream: loop short clips; long clips get ``count`` consecutive frames from a random start
    when training, or ``count`` indices spread uniformly over the whole clip otherwise (models.md §1.5.2)."""
    if n_frames <= 0 or count <= 0:
        raise FeatureError(f"need n_frames > 0 and count > 0, got {n_frames}, {count}")
    if n_frames <= count:
        return np.arange(count, dtype=np.int64) % n_frames
    if train:
        gen = rng if rng is not None else np.random.default_rng()
        start = int(gen.integers(0, n_frames - count + 1))
        return np.arange(start, start + count, dtype=np.int64)
    return np.linspace(0, n_frames - 1, count).round().astype(np.int64)


def resample_indices(capture_ts: npt.NDArray[np.floating] | list[float], fps: float) -> IntArray:
    """Indices of the frames nearest to a regular grid at ``fps``, from the first to the last capture time.

    Streams arrive at any rate (30 fps webcams, dropped frames); the models were trained at a fixed rate (PFED5 25 fps,
    NeuroFace about 50 fps). Nearest-frame selection keeps the integer pixel quantisation the models were trained on.
    """
    ts = np.asarray(capture_ts, dtype=np.float64)
    if ts.ndim != 1 or ts.size == 0:
        raise FeatureError(f"capture times must be a non-empty 1-D array, got shape {list(ts.shape)}")
    if fps <= 0:
        raise FeatureError(f"fps must be positive, got {fps}")
    if np.any(np.diff(ts) < 0):
        raise FeatureError("capture times must be non-decreasing")
    # a thousandth of a frame of slack: epoch capture times carry ~1e-7 s of rounding that must not drop the last frame
    n_out = int(np.floor((ts[-1] - ts[0]) * fps + 1e-3)) + 1
    grid = ts[0] + np.arange(n_out) / fps
    right = np.clip(np.searchsorted(ts, grid), 0, ts.size - 1)
    left = np.clip(right - 1, 0, ts.size - 1)
    pick_left = np.abs(ts[left] - grid) <= np.abs(ts[right] - grid)
    out: IntArray = np.where(pick_left, left, right).astype(np.int64)
    return out


def fill_missing_frames(face: npt.NDArray[np.bool_] | list[bool]) -> IntArray:
    """For each frame, the index of the frame whose observation stands in for it: itself when it has a face, else the
    last earlier frame with one (hold, as a live stream can), or the first face frame for a leading gap.

    Used on dataset clips landmarked by the tracker and on live windows alike; a clip with no face raises.
    """
    mask = np.asarray(face, dtype=bool)
    if mask.ndim != 1 or mask.size == 0:
        raise FeatureError(f"face mask must be a non-empty 1-D array, got shape {list(mask.shape)}")
    if not mask.any():
        raise FeatureError("no frame has a face")
    last = np.where(mask, np.arange(mask.size), -1)
    held = np.maximum.accumulate(last)
    out: IntArray = np.where(held < 0, int(np.argmax(mask)), held).astype(np.int64)
    return out


def model_input(trajectory: FloatArray, t_p: int, time_index: str = "window") -> tuple[FloatArray, FloatArray]:
    """A whole [T, 63, 5] clip -> the [t_p, 63, 5] model input and its [t_p] ``index_t``."""
    _check(trajectory, 3, (len(TRAMP_POINTS_106), 5), "trajectory")
    std = standardise_length(trajectory.shape[0], t_p, time_index)
    return trajectory[std.indices].astype(np.float32), std.index_t
