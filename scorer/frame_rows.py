"""Per-frame arrays of one session's observations, computed once per frame and reused by every window holding it.

A hop window covers the task so far (up to a whole task clip, ~150 frames at 30 fps) and its kinematics the last
couple of seconds, while only a hop's worth of frames (8) is new since the previous window. Everything derived from
a single frame is kept here by frame number: whether the frame is usable (:func:`scorer.scoring.usable`), its
crop-px landmarks and colours as the model input takes them (float32, NaN where unusable), and its face-frame
points for the kinematics (:func:`common.kinematics.face_points`, NaN where the face frame is undefined). A window
then only stacks rows: new frames are converted together in one vectorised call.

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
NAN_POINTS = np.full((106, 2), np.nan, np.float32)
NAN_COLOURS = np.full((106, 3), np.nan, np.float32)
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
    crop_points: F32  # [106, 2]
    colours: F32  # [106, 3]
    face: F64  # [106, 2] face frame (kinematics.face_points)
    face_ok: bool


@dataclasses.dataclass(frozen=True, eq=False)
class SpanRows:
    """The per-frame arrays of a span of observations, oldest first."""

    capture_ts: F64  # [n]
    usable: npt.NDArray[np.bool_]  # [n]
    crop_points: F32  # [n, 106, 2], NaN where not usable
    colours: F32  # [n, 106, 3], NaN where not usable
    face: F64  # [n, 106, 2] face-frame points, NaN where not usable or no face frame
    face_ok: npt.NDArray[np.bool_]  # [n] usable with a face frame: the frames the kinematics count

    @property
    def n_frames(self) -> int:
        return int(self.usable.shape[0])


class FrameRows:
    """Per-frame arrays of one session, by frame number."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._rows: dict[int, _Row] = {}
        self.converted = 0  # frames converted so far (each once unless its observation changes)

    def __len__(self) -> int:
        return len(self._rows)

    def span(self, obs: Sequence[Obs]) -> SpanRows:
        """The arrays of ``obs`` (a span, oldest first), converting the frames not seen before in one go."""
        rows = self._rows
        new = [o for o in obs if (r := rows.get(o.seq)) is None or r.obs is not o]
        if new:
            self._convert(new)
        got = [rows[o.seq] for o in obs]
        self._bound()
        n = len(got)
        if n == 0:
            empty3 = np.zeros((0, 106, 2))
            return SpanRows(np.zeros(0), np.zeros(0, bool), empty3.astype(np.float32),
                            np.zeros((0, 106, 3), np.float32), empty3, np.zeros(0, bool))  # fmt: skip
        return SpanRows(
            capture_ts=np.fromiter((r.obs.capture_ts for r in got), np.float64, n),
            usable=np.fromiter((r.usable for r in got), bool, n),
            crop_points=np.stack([r.crop_points for r in got]),
            colours=np.stack([r.colours for r in got]),
            face=np.stack([r.face for r in got]),
            face_ok=np.fromiter((r.face_ok for r in got), bool, n),
        )

    def _convert(self, obs: list[Obs]) -> None:
        good = [usable(o) for o in obs]
        frame_px = [o.landmarks for o, g in zip(obs, good, strict=True) if g and o.landmarks is not None]
        faces, ok = face_points(np.stack(frame_px)) if frame_px else (np.zeros((0, 106, 2)), np.zeros(0, bool))
        k = 0
        for o, g in zip(obs, good, strict=True):
            if g and o.landmarks_crop is not None and o.colours is not None:
                row = _Row(o, True, np.asarray(o.landmarks_crop, np.float32), o.colours.astype(np.float32),
                           faces[k], bool(ok[k]))  # fmt: skip
                k += 1
            else:
                row = _Row(o, False, NAN_POINTS, NAN_COLOURS, NAN_FACE, False)
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
