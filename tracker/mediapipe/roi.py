"""Rotated square regions of interest and the crops the models see.

A :class:`Roi` is a square in frame pixels: centre, side, and the angle of its x axis (radians, image coordinates
with y down, so a positive angle turns the x axis clockwise on screen). The face ROI's x axis runs along the eye
line from the image-left eye to the image-right eye, so the crop shows the face upright whatever its roll.

* From a detection: centre of the detector box, side = 1.5 x its longer side, angle from the two eye keypoints.
* From landmarks (tracking): the landmarks' bounding box measured in the rotated frame (angle from the outer eye
  corners), centre of that box, side = 1.5 x its longer side. MediaPipe takes the axis-aligned box here; the rotated
  box keeps the face the same size in the crop at any roll (an axis-aligned box of a face rolled 45 degrees is ~1.4x
  too large).
* An eye: centre between the eye corners, side = 2.3 x their distance, angle along them.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
RGB = npt.NDArray[np.uint8]
FACE_SCALE = 1.5
EYE_SCALE = 2.3


@dataclasses.dataclass(frozen=True)
class Roi:
    cx: float
    cy: float
    size: float
    angle: float

    def to_crop(self, side: int) -> F64:
        """2x3 affine from frame px to the ``side`` x ``side`` crop."""
        return cv2.invertAffineTransform(self.to_frame(side)).astype(np.float64)

    def to_frame(self, side: int) -> F64:
        """2x3 affine from crop px (pixel centres at integers, as cv2.warpAffine samples) to frame px."""
        k = self.size / side
        c, s = math.cos(self.angle), math.sin(self.angle)
        h = (side - 1) / 2.0
        return np.array([[k * c, -k * s, self.cx - k * h * (c - s)], [k * s, k * c, self.cy - k * h * (s + c)]],
                        dtype=np.float64)  # fmt: skip

    def box(self) -> F32:
        """The axis-aligned box around the rotated square (x1, y1, x2, y2)."""
        half = self.size / 2 * (abs(math.cos(self.angle)) + abs(math.sin(self.angle)))
        return np.array([self.cx - half, self.cy - half, self.cx + half, self.cy + half], dtype=np.float32)


def line_angle(a: F32 | F64, b: F32 | F64) -> float:
    """Angle of the vector from ``a`` to ``b``."""
    return math.atan2(float(b[1] - a[1]), float(b[0] - a[0]))


def from_detection(box: F32, left_eye: F32, right_eye: F32, scale: float = FACE_SCALE) -> Roi:
    """The face ROI of a detection (``left_eye`` is the image-left eye keypoint)."""
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    cx, cy = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
    return Roi(cx, cy, max(w, h) * scale, line_angle(left_eye, right_eye))


def from_points(points: F32, left: int, right: int, scale: float = FACE_SCALE) -> Roi:
    """The face ROI of landmarks [N, >=2]; ``left``/``right`` index the points that set the angle."""
    pts = np.asarray(points[:, :2], dtype=np.float64)
    angle = line_angle(pts[left], pts[right])
    c, s = math.cos(angle), math.sin(angle)
    u = pts[:, 0] * c + pts[:, 1] * s  # coordinates along the rotated axes
    v = -pts[:, 0] * s + pts[:, 1] * c
    mu, mv = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
    side = max(u.max() - u.min(), v.max() - v.min()) * scale
    return Roi(float(mu * c - mv * s), float(mu * s + mv * c), float(side), angle)


def eye(corner_a: F32, corner_b: F32, scale: float = EYE_SCALE) -> Roi:
    """An eye ROI from its two corners (``corner_a`` on the image-left)."""
    a, b = np.asarray(corner_a[:2], np.float64), np.asarray(corner_b[:2], np.float64)
    centre = (a + b) / 2
    return Roi(float(centre[0]), float(centre[1]), float(np.linalg.norm(b - a)) * scale, line_angle(a, b))


def crop(image: RGB, roi: Roi, side: int, flip: bool = False) -> tuple[RGB, F64]:
    """The ``side`` x ``side`` crop of ``roi`` (zeros outside the frame) and the 2x3 map from crop px to frame px.
    ``flip`` mirrors the crop left-right (the map accounts for it)."""
    to_frame = roi.to_frame(side)
    if flip:
        mirror = np.array([[-1.0, 0.0, side - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        to_frame = to_frame @ mirror
    to_crop = cv2.invertAffineTransform(to_frame)
    out = cv2.warpAffine(image, to_crop, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(0, 0, 0))  # fmt: skip
    return np.asarray(out, dtype=np.uint8), to_frame


def apply(matrix: F64, points: F32 | F64) -> F32:
    """Map [N, 2] points with a 2x3 affine."""
    pts = np.asarray(points[:, :2], dtype=np.float64)
    return np.asarray(pts @ matrix[:, :2].T + matrix[:, 2], dtype=np.float32)
