"""The ``Landmarker`` Protocol: what the tracker needs from any face detector + 106-point landmark model.

Both calls are batched across sessions (one call per tick); implementations hold mechanics only, the tracker owns
face choice, tracking, crops, pose and quality.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from common.messages import SessionInfo

RGB = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float32]


@dataclasses.dataclass(frozen=True, eq=False)
class FrameInput:
    """One decoded frame handed to a landmarker."""

    sid: str
    seq: int
    rgb: RGB  # [H, W, 3] uint8 RGB
    source_index: int = -1  # phantom frame index carried by the Frame message, -1 when unknown
    capture_ts: float = -1.0  # capture time s (the Frame's), -1 when unknown; landmark filters run on it


@dataclasses.dataclass(frozen=True, eq=False)
class Detection:
    """One detected face: box x1, y1, x2, y2 in frame px, score, optional 5 keypoints [5, 2]."""

    box: Points
    score: float
    kps: Points | None = None


class Landmarker(Protocol):
    """A face detector plus a 106-point landmark model (insightface layout, frame px)."""

    name: str

    def open_session(self, sid: str, info: SessionInfo) -> str:
        """Get ready for a session (its ``session:{sid}`` hash); return "" or why it cannot serve it."""
        ...

    def close_session(self, sid: str) -> None:
        """Forget a session."""
        ...

    def detect(self, frames: Sequence[FrameInput]) -> list[list[Detection]]:
        """All faces in each frame, best score first."""
        ...

    def landmarks(self, frames: Sequence[FrameInput], boxes: Sequence[Points]) -> list[Points]:
        """106 landmarks [106, 2] in frame px for the face in each ``boxes[i]`` of ``frames[i]``."""
        ...
