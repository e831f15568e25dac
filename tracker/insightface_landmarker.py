"""The insightface landmarker: SCRFD + 2d106det loaded from a model pack directory (never downloaded)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from common.errors import ConfigError
from common.messages import SessionInfo
from tracker.landmark106 import Landmark106
from tracker.landmarker import Detection, FrameInput, Points
from tracker.ort import open_session
from tracker.scrfd import ScrfdDetector
from tracker.settings import TrackerSettings

_HOW_TO_GET = (
    "The tracker never downloads models. Get insightface's 'buffalo_l' pack (buffalo_l.zip from the insightface "
    "model zoo release, github.com/deepinsight/insightface/releases) and unzip det_10g.onnx and 2d106det.onnx into "
    "that directory, or point FEQA_TRACKER_MODEL_DIR at a directory holding them. The pack is licensed for "
    "non-commercial research only; for phantom sessions set FEQA_TRACKER_LANDMARKER=phantom instead."
)


def model_paths(model_dir: Path, det_model: str, landmark_model: str) -> tuple[Path, Path]:
    """The detector and landmark files, or a :class:`ConfigError` saying where they must go and how to get them."""
    det, lmk = model_dir / det_model, model_dir / landmark_model
    missing = [p for p in (det, lmk) if not p.is_file()]
    if missing:
        names = ", ".join(str(p) for p in missing)
        raise ConfigError(f"insightface model files missing: {names}. {_HOW_TO_GET}")
    return det, lmk


class InsightfaceLandmarker:
    """SCRFD detection and 2d106det landmarks on ONNX Runtime with the configured providers."""

    name = "insightface"

    def __init__(self, detector: ScrfdDetector, landmark: Landmark106) -> None:
        self.detector = detector
        self.landmark = landmark

    @classmethod
    def from_settings(cls, settings: TrackerSettings) -> InsightfaceLandmarker:
        det_path, lmk_path = model_paths(settings.model_dir, settings.det_model, settings.landmark_model)
        threads = settings.intra_op_threads
        det = ScrfdDetector(
            open_session(det_path, settings.providers, threads),
            settings.det_size,
            settings.det_thresh,
            settings.nms_thresh,
        )
        lmk = Landmark106(open_session(lmk_path, settings.providers, threads), lmk_path)
        return cls(det, lmk)

    def open_session(self, sid: str, info: SessionInfo) -> str:
        return ""

    def close_session(self, sid: str) -> None:
        return None

    def detect(self, frames: Sequence[FrameInput]) -> list[list[Detection]]:
        return self.detector.detect([f.rgb for f in frames])

    def landmarks(self, frames: Sequence[FrameInput], boxes: Sequence[Points]) -> list[Points]:
        return self.landmark.landmarks([f.rgb for f in frames], boxes)
