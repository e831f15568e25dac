"""Which landmarker serves a session: the phantom's ground truth for synthetic patients, insightface otherwise."""

from __future__ import annotations

import logging

from common.errors import ConfigError
from common.messages import SessionInfo
from tracker.insightface_landmarker import InsightfaceLandmarker
from tracker.landmarker import Landmarker
from tracker.phantom_landmarker import PhantomLandmarker
from tracker.settings import TrackerSettings

log = logging.getLogger(__name__)


class LandmarkerChoice:
    """Routes sessions by the ``landmarker`` setting (auto: phantom sessions -> phantom, others -> insightface)."""

    def __init__(self, mode: str, insightface: Landmarker | None, phantom: Landmarker | None) -> None:
        self.mode = mode
        self.insightface = insightface
        self.phantom = phantom

    @classmethod
    def from_settings(cls, settings: TrackerSettings) -> LandmarkerChoice:
        """Load what the mode needs. ``insightface`` mode fails loudly without the model pack; ``auto`` logs the
        same error and serves phantom sessions only."""
        insightface: Landmarker | None = None
        if settings.landmarker in ("insightface", "auto"):
            try:
                insightface = InsightfaceLandmarker.from_settings(settings)
            except ConfigError as exc:
                if settings.landmarker == "insightface":
                    raise
                log.error("insightface landmarker unavailable, only phantom sessions will be tracked: %s", exc)
        phantom = PhantomLandmarker() if settings.landmarker in ("phantom", "auto") else None
        return cls(settings.landmarker, insightface, phantom)

    def for_session(self, sid: str, info: SessionInfo) -> tuple[Landmarker | None, str]:
        """The landmarker for a session and "" , or None and why none can serve it."""
        candidates: list[Landmarker] = []
        if self.phantom is not None and info.phantom:
            candidates.append(self.phantom)
        if self.insightface is not None and self.mode != "phantom":
            candidates.append(self.insightface)
        reason = "not_phantom" if self.mode == "phantom" else "no_landmarker"
        for lm in candidates:
            reason = lm.open_session(sid, info)
            if not reason:
                return lm, ""
        return None, reason

    def close(self, sid: str) -> None:
        for lm in (self.insightface, self.phantom):
            if lm is not None:
                lm.close_session(sid)
