"""Head pose from landmarks: known rotations of the generic head are recovered with the documented signs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracker.pose import _MODEL, POSE_POINTS, head_pose

pytestmark = pytest.mark.unit


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = np.radians([-yaw, -pitch, roll])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return np.asarray(rz @ ry @ rx)


def _project(yaw: float, pitch: float, roll: float, w: int = 640, h: int = 480) -> np.ndarray:
    pts3 = _MODEL @ _rotation(yaw, pitch, roll).T + [0.0, 0.0, 600.0]
    cam = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1.0]])
    proj = pts3 @ cam.T
    lm = np.zeros((106, 2), np.float32)
    lm[list(POSE_POINTS)] = proj[:, :2] / proj[:, 2:]
    return lm


@pytest.mark.parametrize("angles", [(0, 0, 0), (25, 0, 0), (-20, 10, 0), (0, -15, 8), (12, 6, -10)])
def test_recovers_known_pose(angles: tuple[float, float, float]) -> None:
    np.testing.assert_allclose(head_pose(_project(*angles), 640, 480), angles, atol=0.1)


def test_signs_follow_the_image() -> None:
    lm = _project(20, 0, 0)
    nose_x, eyes_mid_x = lm[86, 0], (lm[34, 0] + lm[88, 0]) / 2
    assert nose_x > eyes_mid_x  # positive yaw: the nose points to the image right
    lm = _project(0, 15, 0)
    assert lm[86, 1] < (lm[52, 1] + lm[61, 1]) / 2 - 20  # positive pitch: chin up, the nose rises toward the eyes
    lm = _project(0, 0, 10)
    assert lm[88, 1] > lm[34, 1]  # positive roll: the image-right eye is lower (clockwise on screen)
