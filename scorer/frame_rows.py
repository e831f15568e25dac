"""Per-frame arrays of one session's observations, computed once per frame and reused by every window holding it.

A hop window covers the task so far (up to a whole task clip, ~150 frames at 30 fps) and its kinematics the last
couple of seconds, while only a hop's worth of frames (8) is new since the previous window. Everything derived from
a single frame is kept here by frame number: whether the frame is usable (:func:`scorer.scoring.usable`), its
crop-px landmarks and colours as the model input takes them (float32, NaN where unusable), and its face-frame
points for the kinematics (:func:`common.kinematics.face_points`, NaN where the face frame is undefined). A window
then only stacks the rows it uses: new frames are converted together in one vectorised call.

An entry remembers the observation it came from, so a frame number read again with another observation (a
re-published frame after a takeover) is converted afresh. Bounded to ``keep`` frames (the oldest frame numbers go
first) and forgotten with the session's crops (:meth:`forget_before`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from common.kinematics import face_points
from common.messages import Obs

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
NAN_MODEL = np.full((106, 5), np.nan, np.float32)
NAN_FACE = np.full((106, 2), np.nan, np.float64)


def usable(o: Obs) -> bool:
    """A face with finite landmarks (frame and crop px) and colours."""
    if not o.face or o.landmarks is None or o.landmarks_crop is None or o.colours is None:
        return False
    return bool(np.isfinite(o.landmarks).all() and np.isfinite(o.landmarks_crop).all())


@dataclasses.dataclass(frozen=True, eq=False)
class _Row:
    obs: Obs
    usable: bool
    model: F32  # [106, 5] crop-px x, y and colours r, g, b (NaN where not usable)
    face: F64  # [106, 2] face frame (kinematics.face_points)
    face_ok: bool


class SpanRows:
    """The per-frame arrays of a span of observations, oldest first; each array is stacked when first asked for."""

    def __init__(self, rows: list[_Row]) -> None:
        self._rows = rows
        n = len(rows)
        self.capture_ts: F64 = np.fromiter((r.obs.capture_ts for r in rows), np.float64, n)
        self.usable: npt.NDArray[np.bool_] = np.fromiter((r.usable for r in rows), bool, n)

    @property
    def n_frames(self) -> int:
        return len(self._rows)

    def model_arrays(self) -> tuple[F32, F32]:
        """Crop-px landmarks [n, 106, 2] and colours [n, 106, 3], float32, NaN where not usable."""
        if not self._rows:
            return np.zeros((0, 106, 2), np.float32), np.zeros((0, 106, 3), np.float32)
        both = np.stack([r.model for r in self._rows])
        return both[..., :2], both[..., 2:]

    def face_frames(self) -> tuple[F64, F64]:
        """The frames the kinematics count (usable, with a face frame): face-frame points [m, 106, 2] and times."""
        kept = [r for r in self._rows if r.face_ok]
        if not kept:
            return np.zeros((0, 106, 2)), np.zeros(0)
        return np.stack([r.face for r in kept]), np.fromiter((r.obs.capture_ts for r in kept), np.float64, len(kept))


class FrameRows:
    """Per-frame arrays of one session, by frame number."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._rows: dict[int, _Row] = {}
        self.converted = 0  # frames converted so far (each once unless its observation changes)

    def __len__(self) -> int:
        return len(self._rows)

    def span(self, obs: Sequence[Obs]) -> SpanRows:
        """The rows of ``obs`` (a span, oldest first), converting the frames not seen before in one go."""
        rows = self._rows
        new = [o for o in obs if (r := rows.get(o.seq)) is None or r.obs is not o]
        if new:
            self._convert(new)
        got = [rows[o.seq] for o in obs]
        self._bound()
        return SpanRows(got)

    def _convert(self, obs: list[Obs]) -> None:
        good = [usable(o) for o in obs]
        frame_px = [o.landmarks for o, g in zip(obs, good, strict=True) if g and o.landmarks is not None]
        faces, ok = face_points(np.stack(frame_px)) if frame_px else (np.zeros((0, 106, 2)), np.zeros(0, bool))
        k = 0
        for o, g in zip(obs, good, strict=True):
            if g and o.landmarks_crop is not None and o.colours is not None:
                model = np.concatenate([np.asarray(o.landmarks_crop, np.float32), o.colours.astype(np.float32)], 1)
                row = _Row(o, True, model, faces[k], bool(ok[k]))
                k += 1
            else:
                row = _Row(o, False, NAN_MODEL, NAN_FACE, False)
            self._rows[o.seq] = row
        self.converted += len(obs)

    def _bound(self) -> None:
        if len(self._rows) > self.keep:
            for seq in sorted(self._rows)[: len(self._rows) - self.keep]:
                del self._rows[seq]

    def forget_before(self, seq: int) -> None:
        for s in [s for s in self._rows if s < seq]:
            del self._rows[s]

    def clear(self) -> None:
        self._rows.clear()
