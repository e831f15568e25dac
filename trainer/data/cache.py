"""On-disk feature cache: each clip's trajectory features and resized frames, computed once.

The trajectory goes through ``common.features`` (the code the live scorer runs); frames are decoded, converted to RGB
and resized to ``load_size`` (the random crop to the model's size happens per sample). One ``.npz`` per clip under
``<cache_dir>/<key>/``, where the key hashes the feature version, the load size and the clip's source files, so a
changed file or rule never reads stale features.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from common import features
from common.errors import ConfigError
from trainer.data.layouts import ClipRecord

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CachedClip:
    """A clip's record and the cache file holding ``trajectory`` [T, 63, 5] and ``frames`` [T, S, S, 3] uint8."""

    record: ClipRecord
    path: Path

    def load(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
        with np.load(self.path) as data:
            return data["trajectory"], data["frames"]


def _key(record: ClipRecord, load_size: int) -> str:
    h = hashlib.sha256(f"v{features.FEATURE_VERSION}/{load_size}/{record.clip_id}".encode())
    for path in (record.trajectory, record.colour, record.frames_dir):
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _read_frames(frames_dir: Path, load_size: int) -> npt.NDArray[np.uint8]:
    files = sorted(frames_dir.glob("*.jpg"))
    out = np.empty((len(files), load_size, load_size, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise ConfigError(f"cannot decode frame {f}")
        out[i] = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (load_size, load_size), interpolation=cv2.INTER_AREA)
    return out


def preprocess(record: ClipRecord, load_size: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """One clip's features; raises :class:`ConfigError` naming the clip when its files disagree."""
    try:
        traj = features.trajectory_from_files(np.load(record.trajectory), np.load(record.colour))
    except features.FeatureError as exc:
        raise ConfigError(f"clip {record.clip_id}: {exc}") from exc
    frames = _read_frames(record.frames_dir, load_size)
    if frames.shape[0] != traj.shape[0]:
        raise ConfigError(
            f"clip {record.clip_id}: {frames.shape[0]} frames on disk but {traj.shape[0]} trajectory frames"
        )
    return traj, frames


def build_cache(records: list[ClipRecord], cache_dir: Path, load_size: int) -> list[CachedClip]:
    """Preprocess every record not cached yet (with a progress bar) and return the cached clips in order."""
    out: list[CachedClip] = []
    todo = 0
    for record in tqdm(records, desc="features", unit="clip", leave=False):
        path = Path(cache_dir) / f"{_key(record, load_size)}.npz"
        if not path.is_file():
            traj, frames = preprocess(record, load_size)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, trajectory=traj, frames=frames)
            tmp.replace(path)
            todo += 1
        out.append(CachedClip(record, path))
    log.info("feature cache %s: %d clips, %d computed now", cache_dir, len(out), todo)
    return out
