"""On-disk feature cache: each clip's trajectory features and resized frames, computed once.

A clip's features come from one of two sources (``data.landmarks``: ``auto`` picks the first that exists):

* ``files``: the distributed trajectory [T, 73, 2] and colour [T, 71, 3] files through ``common.features`` (the code
  the live scorer runs), and the distributed 256 crops as frames;
* ``video``: the source recording landmarked by the tracker's own pipeline (:mod:`trainer.data.landmarking`), its
  integer crop landmarks and colours through the same ``common.features``, its 256 reference crops as frames.

Both sources go through :mod:`common.model_input`, the code the live scorer runs on the same observations: frames
picked by time at the model's ``fps`` (videos; distributed files are taken to be at that rate already), gaps filled,
the trajectory computed, and each chosen frame's crop resized by the one resize rule twice over: to ``load_size`` for
the training augmentation (random crop to the model's size per sample) and straight to ``model_size``, the frames an
evaluation item (and the live scorer) feeds the model. Each clip also keeps its 106 crop landmarks (of the chosen
frames), the name of the landmarker that made them (``ClipRecord.files_landmarker`` for files), and, when a model
needs them (QAFE-Net), its landmark heatmap images drawn by :mod:`common.heatmaps` from the landmarks and the full
256 crops of the chosen frames, before any resizing (the code the live scorer runs). One ``.npz`` per clip under
``cache_dir``, named by a hash of the cache layout, the feature and model-input versions, both sizes, the fps, the
heatmap spec, the clip's source files and (for videos) the landmarking identity, so a changed file, rule or
landmarker never reads stale features. A video clip the tracker cannot use (undecodable, too few faces) leaves a ``.skip.json`` beside it with the reason, so it is reported, not
recomputed, on the next run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from common import features, heatmaps, model_input
from common.errors import ConfigError
from common.heatmaps import HeatmapSpec
from trainer.data.landmarking import LandmarkedClip, VideoLandmarking
from trainer.data.records import ClipRecord

REF_SIDE = 256  # the reference crop side the landmarks are measured in (models.md §5)

log = logging.getLogger(__name__)

SOURCES = ("auto", "files", "video")
CACHE_VERSION = 3
"""Bumped whenever the arrays a cache file holds change (2: landmarks, landmarker, heatmaps; 3: frames_model)."""


@dataclasses.dataclass(frozen=True)
class CachedClip:
    """A clip's record and the cache file holding ``trajectory`` [T, 63, 5], ``frames`` [T, L, L, 3] uint8 at the
    load size and ``frames_model`` [T, S, S, 3] at the model's side (absent when the sizes agree)."""

    record: ClipRecord
    path: Path

    def load(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
        """(trajectory, frames at the load size): what training augments."""
        with np.load(self.path) as data:
            return data["trajectory"], data["frames"]

    def trajectory(self) -> npt.NDArray[np.float32]:
        """The trajectory alone (a model without an RGB stream): the frames are not decompressed."""
        with np.load(self.path) as data:
            out: npt.NDArray[np.float32] = data["trajectory"]
            return out

    def load_eval(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
        """(trajectory, frames at the model's side): what evaluation feeds the model, as the live scorer does."""
        with np.load(self.path) as data:
            key = "frames_model" if "frames_model" in data.files else "frames"
            return data["trajectory"], data[key]

    def heatmaps(self) -> npt.NDArray[np.uint8]:
        """[T, size, size, 3] heatmap images (only in caches built with a heatmap spec)."""
        with np.load(self.path) as data:
            if "heatmaps" not in data:
                raise ConfigError(f"clip {self.record.clip_id}: its cache file holds no heatmaps")
            out: npt.NDArray[np.uint8] = data["heatmaps"]
            return out

    @property
    def landmarker(self) -> str:
        """Name of the landmarker the clip's observations came from."""
        with np.load(self.path) as data:
            return str(data["landmarker"])


@dataclasses.dataclass(frozen=True)
class SkippedClip:
    clip_id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class CacheResult:
    """The usable clips in input order, and the ones left out with why."""

    clips: list[CachedClip]
    skipped: list[SkippedClip]
    computed: int = 0  # clips whose features were computed by this call (the rest came from the cache)


def source_of(record: ClipRecord, mode: str) -> str:
    """Where a clip's features come from under ``data.landmarks = mode``: "files" or "video"."""
    if mode not in SOURCES:
        raise ConfigError(f"data.landmarks must be one of {SOURCES}, got {mode!r}")
    bare = record.has_trajectory and record.frames_dir is None and record.video is None  # trajectories only
    if mode == "files" or (mode == "auto" and (record.has_files or bare)):
        if not record.has_trajectory:
            raise ConfigError(
                f"clip {record.clip_id}: data.landmarks = 'files' but its trajectory or colour file is missing; use "
                "'auto' (or 'video') to landmark its source video instead"
            )
        return "files"
    if record.video is None:
        raise ConfigError(f"clip {record.clip_id}: data.landmarks = 'video' but the dataset has no source video for it")
    return "video"


def _stat(path: Path) -> str:
    st = path.stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


@dataclasses.dataclass(frozen=True)
class FrameSizes:
    """What the cache resizes frames to and the rate videos are resampled at (``None``: as recorded)."""

    load_size: int
    model_size: int | None = None
    fps: float | None = None

    def tag(self) -> str:
        return f"mi{model_input.MODEL_INPUT_VERSION}/{self.load_size}/{self.model_size}/{self.fps}"


def _key(record: ClipRecord, sizes: FrameSizes, landmarking: str = "", heatmap: HeatmapSpec | None = None) -> str:
    h = hashlib.sha256(f"c{CACHE_VERSION}/v{features.FEATURE_VERSION}/{sizes.tag()}/{record.clip_id}".encode())
    if heatmap is not None:
        h.update(json.dumps(heatmap.to_dict(), sort_keys=True).encode())
    if landmarking:
        if record.video is None:
            raise ConfigError(f"clip {record.clip_id} has no source video")
        h.update(f"video:{_stat(record.video)}:{record.video_start}:{record.video_end}:{landmarking}".encode())
    else:
        if record.trajectory is None or record.colour is None:
            raise ConfigError(f"clip {record.clip_id}: missing trajectory or colour")
        for path in (record.trajectory, record.colour, record.frames_dir):
            h.update(b"no frames" if path is None else _stat(path).encode())
    return h.hexdigest()[:20]


def _read_frames(frames_dir: Path) -> npt.NDArray[np.uint8]:
    """The clip's frame images, RGB, each brought to the 256 crop side (the landmark files' pixel grid)."""
    files = sorted(frames_dir.glob("*.jpg"))
    out = np.empty((len(files), REF_SIDE, REF_SIDE, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise ConfigError(f"cannot decode frame {f}")
        out[i] = model_input.resize_rgb(np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), dtype=np.uint8), REF_SIDE)
    return out


@dataclasses.dataclass(frozen=True)
class ClipArrays:
    """What one cache file holds."""

    trajectory: npt.NDArray[np.float32]  # [T, 63, 5]
    frames: npt.NDArray[np.uint8]  # [T, load_size, load_size, 3]
    frames_model: npt.NDArray[np.uint8] | None  # [T, model_size, model_size, 3] (None: the load size is the model's)
    landmarks: npt.NDArray[np.float32]  # [T, 106, 2] in 256-crop pixels (NaN where the source has no point)
    landmarker: str
    heatmaps: npt.NDArray[np.uint8] | None  # [T, size, size, 3]
    face: npt.NDArray[np.bool_] | None = None  # [T] False where the chosen frame had no face and another stands in

    def save(self, path: Path) -> None:
        arrays: dict[str, npt.NDArray[np.generic]] = {"trajectory": self.trajectory, "frames": self.frames,
                  "landmarks": self.landmarks, "landmarker": np.array(self.landmarker)}  # fmt: skip
        optional = {"frames_model": self.frames_model, "heatmaps": self.heatmaps, "face": self.face}
        arrays.update({k: v for k, v in optional.items() if v is not None})
        _write(path, **arrays)


def _arrays(
    traj: npt.NDArray[np.float32],
    landmarks: npt.NDArray[np.float32],
    crops: npt.NDArray[np.uint8],
    landmarker: str,
    sizes: FrameSizes,
    heatmap: HeatmapSpec | None,
    face: npt.NDArray[np.bool_] | None = None,
) -> ClipArrays:
    """Cache arrays from full 256 crops: heatmaps drawn first, then each crop resized by the one rule
    (:func:`common.model_input.resize_rgb`) to the load size and (when it differs) to the model's side."""
    drawn = None if heatmap is None else heatmaps.heatmap_frames(landmarks, crops, heatmap)
    frames = np.stack([model_input.resize_rgb(c, sizes.load_size) for c in crops])
    frames_model = None
    if sizes.model_size is not None and sizes.model_size != sizes.load_size:
        frames_model = np.stack([model_input.resize_rgb(c, sizes.model_size) for c in crops])
    return ClipArrays(traj, frames, frames_model, landmarks.astype(np.float32), landmarker, drawn, face)


def preprocess(record: ClipRecord, sizes: FrameSizes, heatmap: HeatmapSpec | None = None) -> ClipArrays:
    """One clip's cache arrays from its distributed files (taken to be at the model's rate); raises
    :class:`ConfigError` naming the clip when they disagree. A clip without frames (trajectory and colour files
    only) keeps an empty frame array: only a model that reads no frames may use it."""
    if record.trajectory is None or record.colour is None:
        raise ConfigError(f"clip {record.clip_id}: missing trajectory or colour")
    try:
        raw = np.load(record.trajectory)
        traj = features.trajectory_from_files(raw, np.load(record.colour))
        landmarks = features.landmarks_106_from_73(raw)
    except features.FeatureError as exc:
        raise ConfigError(f"clip {record.clip_id}: {exc}") from exc
    if record.frames_dir is None:
        if heatmap is not None:
            raise ConfigError(f"clip {record.clip_id}: heatmaps are drawn on frames, and it has none")
        empty = np.zeros((0, sizes.load_size, sizes.load_size, 3), dtype=np.uint8)
        return ClipArrays(traj, empty, None, landmarks.astype(np.float32), record.files_landmarker, None)
    crops = _read_frames(record.frames_dir)
    if crops.shape[0] != traj.shape[0]:
        raise ConfigError(
            f"clip {record.clip_id}: {crops.shape[0]} frames on disk but {traj.shape[0]} trajectory frames"
        )
    try:
        return _arrays(traj, landmarks, crops, record.files_landmarker, sizes, heatmap)
    except features.FeatureError as exc:
        raise ConfigError(f"clip {record.clip_id}: {exc}") from exc


def features_from_landmarks(clip: LandmarkedClip, sizes: FrameSizes, heatmap: HeatmapSpec | None = None) -> ClipArrays:
    """A landmarked video clip's cache arrays: :func:`common.model_input.prepare_clip` (frames by time at the
    model's fps, gaps filled, trajectory), then the chosen frames' landmarks and crops through the same ``common``
    rules as the files (heatmaps, the one resize rule)."""
    times = clip.times if clip.times is not None else np.arange(clip.face.size, dtype=np.float64)
    observed = model_input.ObservedClip.build(times, clip.landmarks, clip.colours, clip.face)
    prepared = model_input.prepare_clip(observed, sizes.fps if clip.times is not None else None)
    rows = prepared.rows
    return _arrays(prepared.trajectory, clip.landmarks[rows], clip.crops[rows], clip.landmarker, sizes, heatmap,
                   prepared.own)  # fmt: skip


def _write(path: Path, **arrays: npt.NDArray[np.generic]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # one temporary name per process: two runs building one cache at once each write their own, then rename
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)


def _skip_path(path: Path) -> Path:
    return path.with_suffix(".skip.json")


def build_cache(
    records: list[ClipRecord],
    cache_dir: Path,
    load_size: int,
    mode: str = "auto",
    landmarking: Callable[[], VideoLandmarking] | None = None,
    heatmap: HeatmapSpec | None = None,
    *,
    model_size: int | None = None,
    fps: float | None = None,
) -> CacheResult:
    """Preprocess every record not cached yet (with progress bars) and return the cached clips in order.

    ``landmarking`` builds the video landmarker, only when some clip needs one (it loads models). ``heatmap``: also
    draw and keep each clip's heatmap images (QAFE-Net). ``model_size`` is the model's frame side (evaluation frames
    are then resized straight from the crops to it, as the live scorer does; without it they come from the
    load-size frames) and ``fps`` the model's rate videos are resampled to."""
    cache_dir = Path(cache_dir)
    sizes = FrameSizes(load_size, model_size, fps)
    slots: list[CachedClip | None] = [None] * len(records)
    skipped: dict[int, SkippedClip] = {}
    videos: list[int] = []
    computed = 0
    for i, record in enumerate(tqdm(records, desc="features", unit="clip", leave=False)):
        if source_of(record, mode) == "video":
            videos.append(i)
            continue
        path = cache_dir / f"{_key(record, sizes, heatmap=heatmap)}.npz"
        if not path.is_file():
            preprocess(record, sizes, heatmap).save(path)
            computed += 1
        slots[i] = CachedClip(record, path)
    if videos:
        lm = (landmarking or VideoLandmarking.from_environment)()
        items = [(i, records[i]) for i in videos]
        computed += _cache_videos(items, cache_dir, sizes, lm, slots, skipped, heatmap)
    out = [c for c in slots if c is not None]
    left = [skipped[i] for i in sorted(skipped)]
    for s in left:
        log.warning("clip %s left out: %s", s.clip_id, s.reason)
    log.info("feature cache %s: %d clips, %d computed now, %d left out", cache_dir, len(out), computed, len(left))
    return CacheResult(out, left, computed)


def _cache_videos(
    items: list[tuple[int, ClipRecord]],
    cache_dir: Path,
    sizes: FrameSizes,
    lm: VideoLandmarking,
    slots: list[CachedClip | None],
    skipped: dict[int, SkippedClip],
    heatmap: HeatmapSpec | None,
) -> int:
    """Fill ``slots`` / ``skipped`` at each item's position from the cache or by landmarking; return clips computed."""
    ident = lm.identity()
    todo: dict[int, tuple[int, Path]] = {}  # id(record) -> (position, cache file)
    for i, record in items:
        path = cache_dir / f"{_key(record, sizes, ident, heatmap)}.npz"
        skip = _skip_path(path)
        if path.is_file():
            slots[i] = CachedClip(record, path)
        elif skip.is_file():
            skipped[i] = SkippedClip(record.clip_id, json.loads(skip.read_text())["reason"])
        else:
            todo[id(record)] = (i, path)
    if not todo:
        return 0
    computed = 0
    pending = [r for _, r in items if id(r) in todo]
    with tqdm(total=sum(max(r.n_frames, 1) for r in pending), desc="landmarking videos", unit="frame",
              leave=False) as bar:  # fmt: skip
        for outcome in lm.run(pending, bar.update):
            if outcome.config_problem:
                raise ConfigError(outcome.error)
            record = outcome.record
            i, path = todo[id(record)]
            if outcome.clip is None:
                skipped[i] = SkippedClip(record.clip_id, outcome.error)
                path.parent.mkdir(parents=True, exist_ok=True)
                _skip_path(path).write_text(json.dumps({"clip": record.clip_id, "reason": outcome.error}))
                continue
            if outcome.clip.face.size != record.n_frames:
                log.info("clip %s: label file says %d frames, the video range has %d; using the video",
                         record.clip_id, record.n_frames, outcome.clip.face.size)  # fmt: skip
            features_from_landmarks(outcome.clip, sizes, heatmap).save(path)
            slots[i] = CachedClip(record, path)
            computed += 1
    return computed
