"""Which landmarker serves a session, by the ``landmarker`` setting.

* ``mediapipe`` (default): MediaPipe Face Mesh for every session, phantom sessions included (a phantom is then
  tracked like any camera image, never through its ground truth).
* ``insightface``: SCRFD + 2d106det from a model pack (non-commercial licence; for users who have the pack).
* ``phantom``: the phantom's ground truth read from its pixels, for phantom sessions only: a test oracle for tests
  that need exact truth. Other sessions get the real landmarker passed in as ``real`` (none is loaded by
  :meth:`LandmarkerChoice.from_settings` in this mode, so they get no landmarker and say so).

A real landmarker whose models are missing fails loudly at start (the error says how to get them).
"""

from __future__ import annotations

import logging

from common.messages import SessionInfo
from tracker.landmarker import Landmarker
from tracker.settings import TrackerSettings

log = logging.getLogger(__name__)
MODES = ("mediapipe", "insightface", "phantom")


class LandmarkerChoice:
    """Routes each session to a landmarker: the oracle for phantom sessions in ``phantom`` mode, else ``real``."""

    def __init__(self, mode: str, real: Landmarker | None, phantom: Landmarker | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"landmarker mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.real = real
        self.phantom = phantom

    @classmethod
    def from_settings(cls, settings: TrackerSettings) -> LandmarkerChoice:
        """Load what the mode needs; a real landmarker without its model files raises its ConfigError/ModelError."""
        if settings.landmarker == "phantom":
            from tracker.phantom_landmarker import PhantomLandmarker

            return cls("phantom", None, PhantomLandmarker())
        if settings.landmarker == "insightface":
            from tracker.insightface_landmarker import InsightfaceLandmarker

            return cls("insightface", InsightfaceLandmarker.from_settings(settings))
        from tracker.mediapipe.landmarker import MediapipeLandmarker

        return cls("mediapipe", MediapipeLandmarker.from_settings(settings))

    def for_session(self, sid: str, info: SessionInfo) -> tuple[Landmarker | None, str]:
        """The landmarker for a session and "", or None and why none can serve it."""
        candidates: list[Landmarker] = []
        if self.mode == "phantom" and self.phantom is not None and info.phantom:
            candidates.append(self.phantom)
        if self.real is not None:
            candidates.append(self.real)
        reason = "not_phantom" if self.mode == "phantom" else "no_landmarker"
        for lm in candidates:
            reason = lm.open_session(sid, info)
            if not reason:
                return lm, ""
        return None, reason

    def close(self, sid: str) -> None:
        for lm in (self.real, self.phantom):
            if lm is not None:
                lm.close_session(sid)
