"""The reference crop-to-256 rule (models.md §5) applied to phantom truth instead of a detector.

Per frame: the face box is the box of the 106 true landmarks with its top raised by 25 % of its height (SCRFD's
box reaches into the forehead); it is rounded to integers with x1, y1 clamped at 0. The crop is that box, not
square, resized to 256x256 bilinearly. The 73 landmarks 33-105 are rounded in the frame, shifted by (x1, y1),
clamped into the crop, scaled by 256/w and 256/h independently and rounded to int32. The 71-point colour
("RGB_1x1") is the RGB value (0-255, float32) of the 256-crop pixel under each integer landmark, in TraMP's 71
order (the 73 minus 34 and 88).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

CROP = 256
FOREHEAD = 0.25
KEEP_73 = np.arange(33, 106)
KEEP_71 = np.delete(np.arange(73), [1, 55])  # positions of 106-idx 34 and 88 in the 73-list


@dataclass(frozen=True)
class CroppedFrame:
    image: npt.NDArray[np.uint8]  # [256, 256, 3] RGB
    points73: npt.NDArray[np.int32]  # [73, 2] crop px
    colour71: npt.NDArray[np.float32]  # [71, 3] RGB 0-255


def detector_box(landmarks: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """The phantom's stand-in for a face detector's box: the landmarks' box with its top raised into the forehead
    (x1, y1, x2, y2 float). The dataset crops and the tracker's phantom landmarker both use it, so a model trained on
    a phantom dataset sees the framing the live tracker produces."""
    x1, y1 = float(landmarks[:, 0].min()), float(landmarks[:, 1].min())
    x2, y2 = float(landmarks[:, 0].max()), float(landmarks[:, 1].max())
    return np.array([x1, y1 - FOREHEAD * (y2 - y1), x2, y2], dtype=np.float32)


def face_box(landmarks: npt.NDArray[np.float32]) -> tuple[int, int, int, int]:
    """Integer (x1, y1, x2, y2) box of a frame's landmarks, raised into the forehead, x1/y1 clamped at 0."""
    x1, y1, x2, y2 = (float(v) for v in detector_box(landmarks))
    return max(0, round(x1)), max(0, round(y1)), round(x2), round(y2)


def crop_frame(rgb: npt.NDArray[np.uint8], landmarks: npt.NDArray[np.float32]) -> CroppedFrame:
    """Apply the crop-to-256 rule to one frame and its true landmarks."""
    x1, y1, x2, y2 = face_box(landmarks)
    crop = rgb[y1:y2, x1:x2]
    h, w = crop.shape[:2]
    if h < 2 or w < 2:
        raise ValueError(f"face box {x1, y1, x2, y2} is outside the {rgb.shape[1]}x{rgb.shape[0]} frame")
    image = np.asarray(cv2.resize(crop, (CROP, CROP), interpolation=cv2.INTER_LINEAR), dtype=np.uint8)
    pts = np.round(landmarks[KEEP_73]).astype(np.int64) - (x1, y1)
    pts[:, 0] = np.clip(pts[:, 0], 0, w - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, h - 1)
    scaled = np.round(pts * (CROP / w, CROP / h)).astype(np.int32)
    at = np.clip(scaled[KEEP_71], 0, CROP - 1)
    colour = image[at[:, 1], at[:, 0]].astype(np.float32)
    return CroppedFrame(image=image, points73=scaled, colour71=colour)
