"""The reference crop-to-256 (models.md §5, steps 1-4, exactly), written once: the tracker crops live frames with
it and the phantom crops its datasets with it, so a model trained on phantom data sees the live framing.

Steps, per frame and face box (x1, y1, x2, y2 float frame px): round the box to integers (half to even, as numpy
does) and clamp x1, y1 at 0 and x2, y2 at the frame edge (array slicing cuts them there); the crop is that box, no
margin, not square; the crop image is resized to 256 x 256 bilinearly; landmarks are rounded in frame px, shifted
by (x1, y1), clamped into the crop, scaled by 256 / w and 256 / h independently and rounded again.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import numpy.typing as npt

REF_SIZE = 256
I32 = npt.NDArray[np.int32]
RGB = npt.NDArray[np.uint8]


@dataclasses.dataclass(frozen=True, eq=False)
class RefCrop:
    """A frame's reference crop: the integer box actually cut (x1, y1, x2, y2), the 256 image, landmarks in it."""

    box: I32
    image: RGB  # [256, 256, 3]
    landmarks: I32  # [N, 2] integer px of the 256 crop

    @property
    def width(self) -> int:
        return int(self.box[2] - self.box[0])

    @property
    def height(self) -> int:
        return int(self.box[3] - self.box[1])


def cut_box(box: npt.ArrayLike, frame_w: int, frame_h: int) -> I32 | None:
    """Steps 1-2: the integer box the reference slices, or None when it holds no pixel."""
    x1, y1, x2, y2 = (int(v) for v in np.rint(np.asarray(box, dtype=np.float64)))
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, frame_w), min(y2, frame_h)
    if x2 <= x1 or y2 <= y1:
        return None
    return np.array([x1, y1, x2, y2], dtype=np.int32)


def crop_landmarks(landmarks: npt.ArrayLike, box: I32) -> I32:
    """Steps 3-4 on the points: round, shift, clamp into the crop, scale to 256 per axis, round."""
    w, h = int(box[2] - box[0]), int(box[3] - box[1])
    pts = np.rint(np.asarray(landmarks, dtype=np.float64)) - box[:2].astype(np.float64)
    pts[:, 0] = np.clip(pts[:, 0], 0, w - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, h - 1)
    pts[:, 0] *= REF_SIZE / w
    pts[:, 1] *= REF_SIZE / h
    return np.asarray(np.rint(pts), dtype=np.int32)


def reference_crop(rgb: RGB, box: npt.ArrayLike, landmarks: npt.ArrayLike) -> RefCrop | None:
    """Steps 1-4 for one frame; None when the box lies outside the frame."""
    h, w = rgb.shape[:2]
    cut = cut_box(box, w, h)
    if cut is None:
        return None
    image = cv2.resize(rgb[cut[1] : cut[3], cut[0] : cut[2]], (REF_SIZE, REF_SIZE), interpolation=cv2.INTER_LINEAR)
    return RefCrop(cut, np.asarray(image, dtype=np.uint8), crop_landmarks(landmarks, cut))


def colours_at(ref: RefCrop) -> RGB:
    """RGB of the 256 crop at each integer landmark ([N, 3]); the reference's "1x1" colour, nearest pixel."""
    xs = np.clip(ref.landmarks[:, 0], 0, REF_SIZE - 1)
    ys = np.clip(ref.landmarks[:, 1], 0, REF_SIZE - 1)
    return np.ascontiguousarray(ref.image[ys, xs])
