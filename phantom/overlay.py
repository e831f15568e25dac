"""What lies over the face in some frames: glasses, a passing hand, a change of light. Shared by both renderers.

None of it moves a landmark: the truth stays the face's, as a landmarker should report it through the occlusion.
All drawing is sub-pixel (``shift=4``) and touches only the pixels it covers, except the light change, which
scales the whole frame (only in frames whose gain is not 1).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from phantom.layout import idx

RGB = npt.NDArray[np.uint8]
Pts = npt.NDArray[np.float64]
SHIFT = 4
ONE = 1 << SHIFT

_EYE_BOX = {
    side: [idx(f"{side}_eye_{n}") for n in ("left_corner", "right_corner", "top", "bottom")]
    for side in ("left", "right")
}
_BROW_LOW = {"left": idx("left_eyebrow_lower_middle"), "right": idx("right_eyebrow_lower_middle")}
_CHIN = idx("contour_chin")
_NOSE_TIP = idx("nose_tip")
_CORNER = {"left": idx("mouth_left_corner"), "right": idx("mouth_right_corner")}


def _fixed(pts: Pts) -> npt.NDArray[np.int32]:
    return np.round(pts * ONE).astype(np.int32)


def draw_glasses(frame: RGB, pts: Pts, unit_px: float, colour: tuple[int, int, int] = (35, 30, 30)) -> None:
    """A pair of glasses: a rounded frame around each eye, a bridge and the start of the temples."""
    thick = max(1, round(unit_px * 0.03))
    centres = []
    for side in ("left", "right"):
        eye = pts[_EYE_BOX[side]]
        c = eye.mean(axis=0)
        half_w = 0.62 * abs(eye[1, 0] - eye[0, 0]) + 0.1 * unit_px
        half_h = 0.2 * unit_px
        centres.append((c, half_w))
        axes = (max(1, round(half_w * ONE)), max(1, round(half_h * ONE)))
        angle = float(np.degrees(np.arctan2(eye[1, 1] - eye[0, 1], eye[1, 0] - eye[0, 0])))
        cv2.ellipse(frame, _fixed(c).tolist(), axes, angle, 0.0, 360.0, colour, thick, cv2.LINE_AA, SHIFT)
    (cl, wl), (cr, wr) = centres
    direction = (cr - cl) / max(1e-6, float(np.linalg.norm(cr - cl)))
    a, b = cl + direction * wl, cr - direction * wr
    lift = np.array([0.0, -0.04 * unit_px])
    cv2.polylines(frame, [_fixed(np.stack([a, (a + b) / 2 + lift, b]))], False, colour, thick, cv2.LINE_AA, SHIFT)
    for c, w, sign in ((cl, wl, -1.0), (cr, wr, 1.0)):
        end = c + direction * sign * w
        arm = _fixed(end + direction * sign * 0.25 * unit_px).tolist()
        cv2.line(frame, _fixed(end).tolist(), arm, colour, thick, cv2.LINE_AA, SHIFT)


def draw_hand(
    frame: RGB, pts: Pts, unit_px: float, rise: float, side: str, reach: float, skin: tuple[int, int, int]
) -> None:
    """A hand rising from below over the lower face on image side ``side``; ``rise`` 0 (gone) .. 1 (fully up)."""
    if rise <= 0.0:
        return
    chin, nose, corner = pts[_CHIN], pts[_NOSE_TIP], pts[_CORNER[side]]
    sign = -1.0 if side == "left" else 1.0
    tip = chin + (corner - chin) * reach + np.array([sign * 0.25 * unit_px, 0.0])
    tip[1] = min(tip[1], chin[1]) - reach * 0.3 * (chin[1] - nose[1])
    tip = tip + np.array([0.0, (1.0 - rise) * 2.5 * unit_px])
    palm_w, finger_l = 0.85 * unit_px, 0.55 * unit_px
    base = tip + np.array([0.0, finger_l])
    dark = (int(skin[0] * 0.75), int(skin[1] * 0.75), int(skin[2] * 0.75))
    corners = [(-palm_w / 2, 0.0), (palm_w / 2, 0.0), (palm_w * 0.45, 1.6 * unit_px), (-palm_w * 0.4, 1.6 * unit_px)]
    palm = base[None, :] + np.array(corners)
    cv2.fillPoly(frame, [_fixed(palm)], skin, cv2.LINE_AA, SHIFT)
    width = palm_w / 4.4
    for k in range(4):
        x = base[0] + (k - 1.5) * palm_w / 4.0
        length = finger_l * (0.85, 1.0, 0.95, 0.75)[k]
        top = np.array([x, base[1] - length])
        bar = np.array([top, (x, base[1] + width)])
        finger_px = max(1, round(width))
        cv2.line(frame, _fixed(bar[0]).tolist(), _fixed(bar[1]).tolist(), skin, finger_px, cv2.LINE_AA, SHIFT)
        cv2.circle(frame, _fixed(top).tolist(), max(1, round(width / 2 * ONE)), skin, -1, cv2.LINE_AA, SHIFT)
        if k:
            gap = np.array([[x - palm_w / 8.0, base[1] - 0.1 * length], [x - palm_w / 8.0, base[1] + width]])
            cv2.line(frame, _fixed(gap[0]).tolist(), _fixed(gap[1]).tolist(), dark, 1, cv2.LINE_AA, SHIFT)
    thumb = base[None, :] + np.array([(-sign * palm_w * 0.5, 0.5 * unit_px), (-sign * palm_w * 0.85, -0.1 * unit_px)])
    thumb_px = max(1, round(width * 1.1))
    cv2.line(frame, _fixed(thumb[0]).tolist(), _fixed(thumb[1]).tolist(), skin, thumb_px, cv2.LINE_AA, SHIFT)


def apply_light(frame: RGB, gain: npt.NDArray[np.float64]) -> None:
    """Scale the frame's RGB channels by ``gain`` in place (skipped when the gain is 1)."""
    if np.allclose(gain, 1.0, atol=1e-3):
        return
    lut = np.clip(np.arange(256, dtype=np.float64)[:, None] * gain[None, :] + 0.5, 0, 255).astype(np.uint8)
    cv2.LUT(frame, lut.reshape(256, 1, 3), dst=frame)
