"""Head pose (yaw, pitch, roll in degrees) from 2D landmarks of the 106 layout, by PnP against a generic head.

Points used: the two eye centres (34, 88), the nose tip (86), the mouth corners (52, 61) and the chin (0). The
generic 3D positions (mm, nose tip at the origin, x to the image right, y down, z away from the camera) are rough
adult averages; the camera is a pinhole with focal length = frame width and the centre at the frame centre. Signs:
yaw > 0 when the nose turns to the image right, pitch > 0 when the face tilts up (chin up), roll > 0 when the line
from the image-left eye to the image-right eye rotates clockwise on screen (the phantom's conventions).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from tracker.landmarker import Points

POSE_POINTS = (34, 88, 86, 52, 61, 0)
_MODEL = np.array(
    [[-32.0, -38.0, 20.0], [32.0, -38.0, 20.0], [0.0, 0.0, 0.0], [-26.0, 26.0, 19.0], [26.0, 26.0, 19.0],
     [0.0, 62.0, 22.0]],
    dtype=np.float64,
)  # fmt: skip


def head_pose(landmarks: Points, frame_w: int, frame_h: int) -> npt.NDArray[np.float32]:
    """[yaw, pitch, roll] in degrees; NaNs when PnP fails (degenerate points)."""
    image = landmarks[list(POSE_POINTS)].astype(np.float64)
    camera = np.array([[frame_w, 0, frame_w / 2], [0, frame_w, frame_h / 2], [0, 0, 1]], dtype=np.float64)
    ok, rvec, _tvec = cv2.solvePnP(_MODEL, image, camera, None, flags=cv2.SOLVEPNP_EPNP)
    if not ok:
        return np.full(3, np.nan, dtype=np.float32)
    ok, rvec, _tvec = cv2.solvePnP(_MODEL, image, camera, None, rvec, _tvec, True, cv2.SOLVEPNP_ITERATIVE)
    rot, _ = cv2.Rodrigues(rvec)
    return euler_from_rotation(np.asarray(rot, dtype=np.float64))


def euler_from_rotation(rot: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Yaw (about y), pitch (about x), roll (about z) of R = Rz(roll) @ Ry(yaw) @ Rx(pitch), in degrees."""
    yaw = math.asin(max(-1.0, min(1.0, -float(rot[2, 0]))))
    pitch = math.atan2(float(rot[2, 1]), float(rot[2, 2]))
    roll = math.atan2(float(rot[1, 0]), float(rot[0, 0]))
    # y points down and z away: a positive turn about y moves the nose to the image left, one about x tips it down
    return np.array([math.degrees(-yaw), math.degrees(-pitch), math.degrees(roll)], dtype=np.float32)
