"""The reference crop-to-256 (models.md §5, steps 1-4, exactly) and the RGB crop published for the scorer.

Steps, per frame: round the detector box to integers and clamp x1, y1 at 0 (x2, y2 are cut at the frame edge as
array slicing does); the crop is the tight box, no margin, not square; landmarks are rounded in frame px, shifted by
(x1, y1), clamped into the crop, scaled by 256 / w and 256 / h independently and rounded again; the crop image is
resized to 256 x 256 bilinearly. The RGB crop for the scorer is that 256 image resized to ``crop_size`` by the
shared resize rule (as the reference test transform resizes), so both crops map to frame px with the same box:
x = x1 + u * w / size.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import numpy.typing as npt

from common.model_input import resize_rgb
from tracker.landmarker import RGB, Points

REF_SIZE = 256
I32 = npt.NDArray[np.int32]


@dataclasses.dataclass(frozen=True, eq=False)
class RefCrop:
    """A frame's reference crop: the integer box actually cut (x1, y1, x2, y2), the 256 image, landmarks in it."""

    box: I32
    image: RGB  # [256, 256, 3]
    landmarks: I32  # [106, 2] integer px of the 256 crop

    @property
    def width(self) -> int:
        return int(self.box[2] - self.box[0])

    @property
    def height(self) -> int:
        return int(self.box[3] - self.box[1])


def cut_box(box: Points, frame_w: int, frame_h: int) -> I32 | None:
    """Steps 1-2: the integer box the reference slices, or None when it holds no pixel."""
    x1, y1, x2, y2 = (int(v) for v in np.rint(np.asarray(box, dtype=np.float64)))
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, frame_w), min(y2, frame_h)
    if x2 <= x1 or y2 <= y1:
        return None
    return np.array([x1, y1, x2, y2], dtype=np.int32)


def crop_landmarks(landmarks: Points, box: I32) -> I32:
    """Step 3-4 on the points: round, shift, clamp into the crop, scale to 256 per axis, round."""
    w, h = int(box[2] - box[0]), int(box[3] - box[1])
    pts = np.rint(landmarks.astype(np.float64)) - box[:2].astype(np.float64)
    pts[:, 0] = np.clip(pts[:, 0], 0, w - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, h - 1)
    pts[:, 0] *= REF_SIZE / w
    pts[:, 1] *= REF_SIZE / h
    return np.asarray(np.rint(pts), dtype=np.int32)


def reference_crop(rgb: RGB, box: Points, landmarks: Points) -> RefCrop | None:
    """Steps 1-4 for one frame; None when the box lies outside the frame."""
    h, w = rgb.shape[:2]
    cut = cut_box(box, w, h)
    if cut is None:
        return None
    image = cv2.resize(rgb[cut[1] : cut[3], cut[0] : cut[2]], (REF_SIZE, REF_SIZE))
    return RefCrop(cut, np.asarray(image, dtype=np.uint8), crop_landmarks(landmarks, cut))


def rgb_crop(ref: RefCrop, size: int) -> RGB:
    """The scorer's RGB crop: the 256 reference crop resized to ``size`` by the one resize rule the trainer and the
    scorer also use (:func:`common.model_input.resize_rgb`; itself when size is 256)."""
    return resize_rgb(ref.image, size)


def crop_to_frame(points: npt.ArrayLike, box: I32, size: int) -> npt.NDArray[np.float64]:
    """Map points in a ``size`` x ``size`` crop of ``box`` back to frame px."""
    scale = np.array([(box[2] - box[0]) / size, (box[3] - box[1]) / size], dtype=np.float64)
    return np.asarray(points, dtype=np.float64) * scale + box[:2]


def frame_to_crop(points: npt.ArrayLike, box: I32, size: int) -> npt.NDArray[np.float64]:
    """Map frame px into a ``size`` x ``size`` crop of ``box`` (the inverse of :func:`crop_to_frame`)."""
    scale = np.array([size / (box[2] - box[0]), size / (box[3] - box[1])], dtype=np.float64)
    return (np.asarray(points, dtype=np.float64) - box[:2]) * scale


def colours_at(ref: RefCrop) -> RGB:
    """RGB of the 256 crop at each integer landmark ([106, 3]); the reference's "1x1" colour, nearest pixel."""
    xs = np.clip(ref.landmarks[:, 0], 0, REF_SIZE - 1)
    ys = np.clip(ref.landmarks[:, 1], 0, REF_SIZE - 1)
    return np.ascontiguousarray(ref.image[ys, xs])
