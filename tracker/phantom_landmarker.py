"""The phantom landmarker: ground truth for synthetic patients, recovered from the frame index in the pixels.

A phantom session's ``session:{sid}`` hash carries the patient spec (``phantom``, the PatientSpec JSON) and its
render size. For each frame the index code drawn by the phantom is read back from the pixels (the Frame's
``source_index`` is the fallback), the phantom's truth for that index is computed and scaled to the frame size.
The "detection" box is :func:`phantom.crop.detector_box` (the landmark box raised into the forehead, as SCRFD's
box is), the rule the phantom datasets are cropped with, so live crops frame the face as the training data does.
Frames without a readable index have no face.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from common.logs import session_logger
from common.messages import SessionInfo
from phantom.crop import detector_box
from phantom.face import Phantom
from phantom.index_code import read_index
from phantom.spec import PatientSpec
from tracker.landmarker import RGB, Detection, FrameInput, Points

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Session:
    spec: PatientSpec
    width: int
    height: int
    fps: float
    phantoms: dict[tuple[int, int], Phantom | None] = dataclasses.field(default_factory=dict)  # None: build failed


class PhantomLandmarker:
    """Serves sessions whose hash names a phantom patient."""

    name = "phantom"

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}

    def open_session(self, sid: str, info: SessionInfo) -> str:
        text = info.phantom
        if not text:
            return "not_phantom"
        try:
            spec = PatientSpec.from_json(text)
        except Exception as exc:  # the spec comes from another process: any parse failure is a bad session
            session_logger(log, sid).error("phantom spec unreadable: %s", exc)
            return "bad_phantom_spec"
        self._sessions[sid] = _Session(spec, info.width, info.height, info.fps or 30.0)
        return ""

    def close_session(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def truth(self, frame: FrameInput) -> Points | None:
        """The phantom's landmarks for this frame in frame px, or None without a readable index."""
        sess = self._sessions.get(frame.sid)
        if sess is None:
            return None
        index = self.frame_index(frame.rgb, frame.source_index)
        if index is None:
            return None
        h, w = frame.rgb.shape[:2]
        size = (sess.width or w, sess.height or h)
        if size in sess.phantoms and sess.phantoms[size] is None:
            return None  # this size failed to build once: not retried for every frame
        try:
            phantom = sess.phantoms.get(size)
            if phantom is None:
                try:
                    phantom = Phantom(sess.spec, size[0], size[1], sess.fps)
                except (ValueError, MemoryError) as exc:
                    sess.phantoms[size] = None
                    session_logger(log, frame.sid).error("phantom %dx%d cannot be built: %s", *size, exc)
                    return None
                sess.phantoms[size] = phantom
            pts = np.asarray(phantom.truth(index).landmarks, dtype=np.float64)
        except (ValueError, IndexError) as exc:  # a size the phantom refuses, an index past the clip
            session_logger(log, frame.sid).warning("frame %d: no phantom truth: %s", frame.seq, exc)
            return None
        scale = np.array([w / size[0], h / size[1]], dtype=np.float64)
        return np.asarray(pts * scale, dtype=np.float32)

    @staticmethod
    def frame_index(rgb: RGB, source_index: int) -> int | None:
        """The index code in the pixels, else the frame's ``source_index``, else None."""
        try:
            index = read_index(rgb)
        except ValueError:  # frame too small to carry the code
            index = None
        if index is None and source_index >= 0:
            return source_index
        return None if index is None else int(index)

    def detect(self, frames: Sequence[FrameInput]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for f in frames:
            pts = self.truth(f)
            if pts is None:
                out.append([])
                continue
            out.append([Detection(detector_box(pts), 1.0)])
        return out

    def landmarks(self, frames: Sequence[FrameInput], boxes: Sequence[Points]) -> list[Points]:
        out: list[Points] = []
        for f in frames:
            pts = self.truth(f)
            out.append(pts if pts is not None else np.full((106, 2), np.nan, dtype=np.float32))
        return out
