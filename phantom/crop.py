"""The reference crop-to-256 rule (common.crop, the one implementation the tracker uses too) applied to phantom
truth instead of a detector.

Per frame: the face box is the box of the 106 true landmarks with its top raised by 25 % of its height (SCRFD's
box reaches into the forehead), cut and resized by :func:`common.crop.reference_crop`. The 73 landmarks 33-105 of
the crop are kept, and the 71-point colour ("RGB_1x1") is the RGB value (0-255, float32) of the 256-crop pixel
under each integer landmark, in TraMP's 71 order (the 73 minus 34 and 88).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.crop import REF_SIZE, cut_box, reference_crop

CROP = REF_SIZE
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


def face_box(landmarks: npt.NDArray[np.float32], frame_w: int = 1 << 30, frame_h: int = 1 << 30) -> tuple[int, ...]:
    """Integer (x1, y1, x2, y2) box the crop cuts (common.crop.cut_box of the detector box)."""
    cut = cut_box(detector_box(landmarks), frame_w, frame_h)
    if cut is None:
        raise ValueError("the face box holds no pixel")
    return tuple(int(v) for v in cut)


def crop_frame(rgb: npt.NDArray[np.uint8], landmarks: npt.NDArray[np.float32]) -> CroppedFrame:
    """Apply the crop-to-256 rule to one frame and its true landmarks."""
    ref = reference_crop(rgb, detector_box(landmarks), landmarks)
    if ref is None or ref.width < 2 or ref.height < 2:
        raise ValueError(f"face box {detector_box(landmarks)} is outside the {rgb.shape[1]}x{rgb.shape[0]} frame")
    points = ref.landmarks[KEEP_73]
    at = np.clip(points[KEEP_71], 0, CROP - 1)
    colour = ref.image[at[:, 1], at[:, 0]].astype(np.float32)
    return CroppedFrame(image=ref.image, points73=np.ascontiguousarray(points), colour71=colour)
