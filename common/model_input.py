"""Exactly the tensors a model gets, from observations and face crops: one code path for the trainer's datasets and
the live scorer (design.md §3; models.md §1.3 and §1.5.2).

Both sides run these steps, in this order:

1. **Frames by capture time** (:func:`prepare_clip`): the clip's frames nearest a regular grid at the model's fps
   (:func:`common.features.resample_indices`); a dataset clip recorded at the model's rate keeps every frame.
2. **Gaps**: a chosen frame without a usable face (no face, or non-finite landmarks or colours) stands in with the
   last earlier chosen frame that has one (:func:`common.features.fill_missing_frames`).
3. **Trajectory**: :func:`common.features.trajectory_features` on the chosen frames (the nose anchor is the clip's
   first chosen frame).
4. **Length** (:func:`sample`): :func:`common.features.standardise_length` gives the trajectory rows and
   ``index_t``; :func:`common.features.rgb_frame_indices` the RGB rows (uniform over the clip outside training).
   The live continuous score (a hop window: the active task's clip so far) takes the *newest* ``rgb_frames``
   frames instead (``rgb="latest"``: consecutive, as training samples them), so consecutive windows share most
   frames and their features come from the scorer's cache; a task score uses the uniform rule above.
5. **RGB** (:func:`rgb_input`): each chosen crop is resized to the model's side by :func:`resize_rgb`, the one
   resize rule (OpenCV area interpolation, straight from the crop the tracker cut; the tracker's own RGB crop uses
   the same function), then scaled to [0, 1] and normalised with the model's mean and std, channels first.

The dataset cache stores the output of step 3 and, per chosen frame, the crop resized once to the model's side by
step 5's rule, so an evaluation item equals what the live path computes from the same video (a test checks this).
For the inputs to match exactly, the tracker's crop must be the 256 reference crop or already the model's side
(``FEQA_TRACKER_CROP_SIZE``); any other side is resized twice and the scorer says so in its log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from common import features
from common.features import FeatureError

if TYPE_CHECKING:
    from common.manifest import Manifest

MODEL_INPUT_VERSION = 1
"""Bumped whenever a rule in this module changes (part of the trainer's cache keys)."""

RESIZE_INTERPOLATION = cv2.INTER_AREA
"""The one resize rule for face crops: area averaging (no aliasing when shrinking the 256 crop)."""

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
ByteArray = npt.NDArray[np.uint8]


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What a model's inputs look like: trajectory length, RGB frame count, side and normalisation, frame rate."""

    t_p: int
    rgb_frames: int
    rgb_size: int
    rgb_mean: tuple[float, float, float]
    rgb_std: tuple[float, float, float]
    fps: float
    time_index: str = "window"  # common.features.TIME_INDEX_RULES: the index_t rule the model was trained with

    def __post_init__(self) -> None:
        features.check_time_index(self.time_index)
        if self.t_p <= 0 or self.rgb_frames <= 0 or self.rgb_size <= 0 or not self.fps > 0:
            raise FeatureError(f"input spec needs positive t_p, rgb_frames, rgb_size and fps, got {self}")
        if len(self.rgb_mean) != 3 or len(self.rgb_std) != 3 or min(self.rgb_std) <= 0:
            raise FeatureError(f"rgb_mean and rgb_std need 3 values (std > 0), got {self.rgb_mean}, {self.rgb_std}")

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> InputSpec:
        return cls(
            t_p=manifest.t_p,
            rgb_frames=manifest.rgb_frames,
            rgb_size=manifest.rgb_size,
            rgb_mean=manifest.rgb_mean,
            rgb_std=manifest.rgb_std,
            fps=manifest.fps,
            time_index=manifest.time_index,
        )


@dataclasses.dataclass(frozen=True, eq=False)
class ObservedClip:
    """Per-frame observations of one clip, oldest first.

    ``landmarks`` are the 106 points in pixels of the 256 reference crop (``Obs.landmarks_crop``; NaN where a frame
    has none), ``colours`` the RGB at each landmark, ``face`` whether the tracker saw a face.
    """

    capture_ts: npt.NDArray[np.float64]  # [n] seconds
    landmarks: FloatArray  # [n, 106, 2]
    colours: FloatArray  # [n, 106, 3]
    face: npt.NDArray[np.bool_]  # [n]

    def __post_init__(self) -> None:
        n = int(np.asarray(self.capture_ts).shape[0]) if np.ndim(self.capture_ts) == 1 else -1
        shapes = {
            "capture_ts": (np.shape(self.capture_ts), (n,)),
            "landmarks": (np.shape(self.landmarks), (n, features.NUM_POINTS_106, 2)),
            "colours": (np.shape(self.colours), (n, features.NUM_POINTS_106, 3)),
            "face": (np.shape(self.face), (n,)),
        }
        for name, (got, want) in shapes.items():
            if n < 0 or tuple(got) != want:
                raise FeatureError(f"observed clip: {name} has shape {list(got)}, expected {list(want)}")
        if n == 0:
            raise FeatureError("observed clip has no frames")

    @classmethod
    def build(
        cls,
        capture_ts: npt.ArrayLike,
        landmarks: npt.ArrayLike,
        colours: npt.ArrayLike,
        face: npt.ArrayLike,
    ) -> ObservedClip:
        """Convert and check the four per-frame arrays."""
        return cls(
            np.asarray(capture_ts, dtype=np.float64),
            np.asarray(landmarks, dtype=np.float32),
            np.asarray(colours, dtype=np.float32),
            np.asarray(face, dtype=bool),
        )

    @property
    def n_frames(self) -> int:
        return int(self.face.shape[0])

    def usable(self) -> npt.NDArray[np.bool_]:
        """Frames with a face whose landmarks and colours are all finite."""
        finite_lm = np.isfinite(self.landmarks).all(axis=(1, 2))
        finite_col = np.isfinite(self.colours).all(axis=(1, 2))
        out: npt.NDArray[np.bool_] = self.face & finite_lm & finite_col
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedClip:
    """Steps 1-3: for each model frame the clip row it uses, and the trajectory features of those rows."""

    rows: IntArray  # [m] rows of the observed clip
    trajectory: FloatArray  # [m, 63, 5]
    own: npt.NDArray[np.bool_]  # [m] False where the chosen frame had no usable face and another stands in

    @property
    def n_frames(self) -> int:
        return int(self.rows.shape[0])

    @property
    def filled(self) -> int:
        """Model frames that stand in for a frame without a usable face."""
        return int((~self.own).sum())


def clip_rows(clip: ObservedClip, fps: float | None) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Steps 1-2: for each model frame the clip row it uses, and whether that frame had a usable face itself.

    Raises :class:`FeatureError` when no chosen frame has a usable face.
    """
    picked = features.resample_indices(clip.capture_ts, fps) if fps else np.arange(clip.n_frames, dtype=np.int64)
    ok = clip.usable()[picked]
    hold = features.fill_missing_frames(ok)
    return picked[hold].astype(np.int64), ok


def prepare_clip(clip: ObservedClip, fps: float | None) -> PreparedClip:
    """Pick the frames at ``fps`` by capture time (every frame when None), fill gaps, compute the trajectory.

    Raises :class:`FeatureError` when no chosen frame has a usable face.
    """
    rows, ok = clip_rows(clip, fps)
    trajectory = features.trajectory_features(clip.landmarks[rows], clip.colours[rows])
    return PreparedClip(rows=rows, trajectory=trajectory, own=ok)


def trajectory_at(clip: ObservedClip, rows: IntArray, anchor: int) -> FloatArray:
    """Step 3 for the clip rows ``rows`` only, anchored at the clip row ``anchor``: the same values as
    ``trajectory_features`` over the whole prepared clip (anchored at its first frame) taken at those rows, without
    computing the rows no model input uses (a live hop window keeps T_p of a task's frames so far)."""
    take = np.concatenate([np.array([anchor], np.int64), rows])  # trajectory_features anchors at its first row
    return features.trajectory_features(clip.landmarks[take], clip.colours[take])[1:]


@dataclasses.dataclass(frozen=True, eq=False)
class Sampling:
    """Step 4: which prepared frames the trajectory and the RGB stream take, and ``index_t``."""

    traj_idx: IntArray  # [t_p] into the prepared frames
    index_t: FloatArray  # [t_p]
    rgb_idx: IntArray  # [rgb_frames] into the prepared frames


RGB_RULES = ("uniform", "latest")


def sample(
    n_frames: int,
    spec: InputSpec,
    *,
    train: bool = False,
    rng: np.random.Generator | None = None,
    rgb: str = "uniform",
) -> Sampling:
    """The paper's clip rules on a prepared clip of ``n_frames`` frames (loop short clips, keep the latter T_p of
    long ones; RGB frames uniform over the clip, or consecutive from a random start when training). ``rgb="latest"``
    takes the newest ``rgb_frames`` consecutive frames instead (looped like the others when the clip is shorter)."""
    if rgb not in RGB_RULES:
        raise FeatureError(f"rgb rule must be one of {RGB_RULES}, got {rgb!r}")
    std = features.standardise_length(n_frames, spec.t_p, spec.time_index)
    if rgb == "latest" and n_frames > spec.rgb_frames:
        idx = np.arange(n_frames - spec.rgb_frames, n_frames, dtype=np.int64)
    else:
        idx = features.rgb_frame_indices(n_frames, spec.rgb_frames, train=train, rng=rng)
    return Sampling(traj_idx=std.indices, index_t=std.index_t, rgb_idx=idx)


def resize_rgb(image: npt.NDArray[np.uint8], size: int) -> ByteArray:
    """The one resize rule: a uint8 RGB crop [H, W, 3] -> [size, size, 3] (itself when already that size)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) == 0:
        raise FeatureError(f"a face crop must be uint8 [H, W, 3], got {arr.dtype} {list(arr.shape)}")
    if arr.shape[0] == size and arr.shape[1] == size:
        return np.ascontiguousarray(arr)
    return np.asarray(cv2.resize(arr, (size, size), interpolation=RESIZE_INTERPOLATION), dtype=np.uint8)


def normalise_rgb(images: npt.NDArray[np.uint8], mean: Sequence[float], std: Sequence[float]) -> FloatArray:
    """uint8 [k, S, S, 3] -> float32 [k, 3, S, S]: ``(x / 255 - mean) / std`` per channel, in float32."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[3] != 3:
        raise FeatureError(f"expected uint8 crops [k, S, S, 3], got {list(x.shape)}")
    m = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    chw = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32)
    out: FloatArray = ((chw / np.float32(255.0) - m) / s).astype(np.float32)
    return out


def rgb_input(images: Sequence[npt.NDArray[np.uint8]] | npt.NDArray[np.uint8], spec: InputSpec) -> FloatArray:
    """Step 5 for a list (or stack) of crops of any side: resized by :func:`resize_rgb`, then normalised."""
    resized = np.stack([resize_rgb(img, spec.rgb_size) for img in images])
    return normalise_rgb(resized, spec.rgb_mean, spec.rgb_std)


@dataclasses.dataclass(frozen=True, eq=False)
class ModelInput:
    """One clip's model input (no batch axis) and where its RGB frames come from."""

    trajectory: FloatArray  # [t_p, 63, 5]
    index_t: FloatArray  # [t_p]
    traj_rows: IntArray  # [t_p] rows of the observed clip the trajectory frames come from
    rgb_rows: IntArray  # [rgb_frames] rows of the observed clip whose crops the RGB stream sees
    frames: FloatArray | None  # [rgb_frames, 3, S, S], when crops were given
    filled: int = 0


CropSource = Callable[[IntArray], Sequence[npt.NDArray[np.uint8]]]


def model_input(
    clip: ObservedClip, spec: InputSpec, crops: CropSource | None = None, *, rgb: str = "uniform"
) -> ModelInput:
    """Steps 1-5 on one clip. ``crops`` maps observed-clip rows to their crops; without it only the rows are given
    (a scorer with per-frame features cached looks them up by row instead). ``rgb`` picks the RGB rule of step 4."""
    rows, own = clip_rows(clip, spec.fps)
    s = sample(int(rows.shape[0]), spec, rgb=rgb)
    rgb_rows = rows[s.rgb_idx]
    traj_rows = rows[s.traj_idx]
    frames = rgb_input(crops(rgb_rows), spec) if crops is not None else None
    return ModelInput(
        trajectory=np.ascontiguousarray(trajectory_at(clip, traj_rows, int(rows[0]))),
        index_t=s.index_t,
        traj_rows=traj_rows,
        rgb_rows=rgb_rows,
        frames=frames,
        filled=int((~own).sum()),
    )
