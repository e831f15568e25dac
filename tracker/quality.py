"""Quality per frame and per window, and the coaching text a bad window earns.

Per frame (``Obs.quality``): det_score, face_px (shorter box side), face_frac (box height / frame height),
brightness (mean luma of the 256 crop, 0-255), sharpness (variance of its Laplacian), tracked (1 when the box came
from landmark tracking, 0 from the detector), faces (detections in the frame, detector frames only).
Per window, over every frame of its span (first_seq .. last_seq): span (frames it names), frames (observed),
missing (named but never observed: dropped before the tracker saw them), face_fraction (faces / span), det_score
(mean), max_abs_yaw, max_abs_pitch, brightness (mean), sharpness (median), face_px (median); plus ``ok`` (1/0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import cv2
import numpy as np

from tracker.landmarker import RGB
from tracker.settings import TrackerSettings


def image_quality(crop256: RGB) -> tuple[float, float]:
    """(brightness, sharpness) of a face crop."""
    gray = cv2.cvtColor(crop256, cv2.COLOR_RGB2GRAY)
    return float(gray.mean()), float(cv2.Laplacian(gray, cv2.CV_64F).var())


@dataclasses.dataclass(frozen=True)
class FrameSample:
    """What the window aggregate needs from one observation."""

    seq: int
    face: bool
    det_score: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    brightness: float = float("nan")
    sharpness: float = float("nan")
    face_px: float = 0.0


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """The quality gate's limits (from settings)."""

    min_det_score: float
    max_yaw_deg: float
    max_pitch_deg: float
    min_brightness: float
    max_brightness: float
    min_sharpness: float
    min_face_fraction: float
    min_face_px: float

    @classmethod
    def from_settings(cls, s: TrackerSettings) -> Thresholds:
        return cls(s.min_det_score, s.max_yaw_deg, s.max_pitch_deg, s.min_brightness, s.max_brightness,
                   s.min_sharpness, s.min_face_fraction, float(s.min_face_px))  # fmt: skip


def window_quality(
    samples: Sequence[FrameSample], limits: Thresholds, first_seq: int | None = None, last_seq: int | None = None
) -> dict[str, float]:
    """Aggregate the samples of the frames ``first_seq`` .. ``last_seq`` (oldest first) and judge them.

    Every frame of the span counts: one without a sample was dropped before the tracker saw it (``missing``). Without
    a span the samples' own first and last seq bound it."""
    n = len(samples)
    if first_seq is None:
        first_seq = samples[0].seq if samples else 0
    if last_seq is None:
        last_seq = samples[-1].seq if samples else -1
    span = max(0, last_seq - first_seq + 1)
    faces = [s for s in samples if s.face]
    missing = max(0, span - len({s.seq for s in samples}))
    out: dict[str, float] = {"frames": float(n), "missing": float(missing), "span": float(span)}
    out["face_fraction"] = len(faces) / span if span else 0.0
    if faces:
        out["det_score"] = float(np.mean([s.det_score for s in faces]))
        out["max_abs_yaw"] = float(max(abs(s.yaw) for s in faces))
        out["max_abs_pitch"] = float(max(abs(s.pitch) for s in faces))
        out["brightness"] = float(np.nanmean([s.brightness for s in faces]))
        out["sharpness"] = float(np.nanmedian([s.sharpness for s in faces]))
        out["face_px"] = float(np.median([s.face_px for s in faces]))
    out["ok"] = 0.0 if problems(out, limits) else 1.0
    return out


def problems(q: dict[str, float], limits: Thresholds) -> list[str]:
    """Why a window fails the gate, most actionable first ([] when it passes)."""
    out: list[str] = []
    if q.get("face_fraction", 0.0) < limits.min_face_fraction:
        out.append("no_face")
    if "det_score" not in q:
        return out
    if q["brightness"] < limits.min_brightness:
        out.append("too_dark")
    elif q["brightness"] > limits.max_brightness:
        out.append("too_bright")
    if q["face_px"] < limits.min_face_px * 2:
        out.append("too_far")
    if q["max_abs_yaw"] > limits.max_yaw_deg or q["max_abs_pitch"] > limits.max_pitch_deg:
        out.append("turned")
    if q["sharpness"] < limits.min_sharpness:
        out.append("blurry")
    if q["det_score"] < limits.min_det_score and not out:
        out.append("low_confidence")
    return out


COACH_TEXT = {
    "no_face": "We can't see your face. Please sit in front of the camera.",
    "too_dark": "It's a bit dark. Please turn on more light or face a window.",
    "too_bright": "There's too much light behind or on you. Please move away from bright light.",
    "too_far": "Please move a little closer to the camera.",
    "turned": "Please face the camera and keep your head straight.",
    "blurry": "The picture is blurry. Please hold still or clean the camera.",
    "low_confidence": "Please face the camera in good light.",
}
