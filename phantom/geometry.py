"""The neutral 3D face of an identity: the 106 landmarks plus the extra outline points the renderer needs.

Units are inter-ocular distances (eye centre to eye centre); x points to the image right, y down, z toward the
camera; the origin is midway between the eye centres. Points 0-105 are the insightface layout
(:mod:`phantom.layout`); points from 106 on are render-only outlines (forehead, hair, neck, shoulders) that are
never reported as landmarks.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from phantom.layout import N_POINTS, contour_path, idx
from phantom.spec import Identity

Points = npt.NDArray[np.float64]

N_FORE = 9
N_HAIRLINE = 9
N_SCALP = 11
FORE = slice(N_POINTS, N_POINTS + N_FORE)
HAIRLINE = slice(FORE.stop, FORE.stop + N_HAIRLINE)
SCALP = slice(HAIRLINE.stop, HAIRLINE.stop + N_SCALP)
NECK = slice(SCALP.stop, SCALP.stop + 4)
SHIRT = slice(NECK.stop, NECK.stop + 6)
HAIR_BACK = slice(SHIRT.stop, SHIRT.stop + 2)
N_ALL = HAIR_BACK.stop
TEMPLE_Y = -0.05
HEAD_PIVOT = (0.0, 0.5, -1.0)


def mirror_name(name: str) -> str:
    """The name of the mirror-image landmark (image-left <-> image-right)."""
    return name.replace("left", "\0").replace("right", "left").replace("\0", "right")


def _left_half(ident: Identity) -> dict[str, tuple[float, float, float]]:
    """Image-left and midline landmarks by name; the image-right half is their mirror."""
    p: dict[str, tuple[float, float, float]] = {}
    # contour: lower half-ellipse from the image-left temple (left1) to the chin
    w, depth = ident.face_width, ident.face_length
    for i in range(1, 17):
        u = (i - 1) / 16.0
        a = u * math.pi / 2
        x = -w * math.cos(a) ** 0.75
        y = TEMPLE_Y + (depth - TEMPLE_Y) * math.sin(a)
        p[f"contour_left{i}"] = (x, y, -0.35 * (1 - math.sin(a)))
    p["contour_chin"] = (0.0, depth, 0.0)
    # image-left eye, centre (-0.5, 0)
    cx, ew, eh, tilt = -0.5, ident.eye_width, ident.eye_height, ident.canthal_tilt
    e = "left_eye_"
    p[e + "left_corner"] = (cx - ew, -tilt, 0.0)
    p[e + "right_corner"] = (cx + ew, 0.0, 0.02)
    p[e + "upper_left_quarter"] = (cx - 0.55 * ew, -0.85 * eh - 0.5 * tilt, 0.04)
    p[e + "top"] = (cx, -eh, 0.05)
    p[e + "upper_right_quarter"] = (cx + 0.55 * ew, -0.8 * eh, 0.05)
    p[e + "lower_left_quarter"] = (cx - 0.55 * ew, 0.65 * eh - 0.5 * tilt, 0.04)
    p[e + "bottom"] = (cx, 0.8 * eh, 0.05)
    p[e + "lower_right_quarter"] = (cx + 0.55 * ew, 0.6 * eh, 0.05)
    p[e + "center"] = (cx, -0.1 * eh, 0.05)
    p[e + "pupil"] = (cx, -0.1 * eh, 0.06)
    # image-left brow: outer tip is left_corner, inner end has two corners
    bx, by, th, bl = -0.52, -ident.brow_height, ident.brow_thickness, ident.brow_length
    b = "left_eyebrow_"
    p[b + "left_corner"] = (bx - bl, by + 0.03, -0.02)
    p[b + "upper_left_quarter"] = (bx - bl / 2, by - 0.6 * th - 0.02, 0.0)
    p[b + "upper_middle"] = (bx, by - 0.55 * th - 0.025, 0.02)
    p[b + "upper_right_quarter"] = (bx + bl / 2, by - 0.5 * th - 0.01, 0.03)
    p[b + "upper_right_corner"] = (bx + bl, by - 0.5 * th + 0.005, 0.03)
    p[b + "lower_right_corner"] = (bx + bl, by + 0.5 * th, 0.03)
    p[b + "lower_right_quarter"] = (bx + bl / 2, by + 0.5 * th, 0.03)
    p[b + "lower_middle"] = (bx, by + 0.45 * th, 0.02)
    p[b + "lower_left_quarter"] = (bx - bl / 2, by + 0.3 * th, 0.0)
    # nose
    nl, nw = ident.nose_length, ident.nose_width
    p["nose_bridge1"] = (0.0, 0.08, 0.12)
    p["nose_bridge2"] = (0.0, 0.08 + (nl - 0.08) * 0.33, 0.2)
    p["nose_bridge3"] = (0.0, 0.08 + (nl - 0.08) * 0.66, 0.28)
    p["nose_tip"] = (0.0, nl, 0.35)
    p["nose_middle_contour"] = (0.0, nl + 0.09, 0.22)
    p["nose_left_contour1"] = (-0.1, 0.14, 0.08)
    p["nose_left_contour2"] = (-0.12, 0.08 + (nl - 0.08) * 0.5, 0.1)
    p["nose_left_contour3"] = (-nw, nl - 0.02, 0.12)
    p["nose_left_contour4"] = (-0.75 * nw, nl + 0.07, 0.15)
    p["nose_left_contour5"] = (-0.35 * nw, nl + 0.09, 0.2)
    # mouth: outer line (upper 1-2, lower 2-3) and inner line (upper 3-4, lower 1)
    my, mw, ul, ll = ident.mouth_y, ident.mouth_width, ident.upper_lip, ident.lower_lip
    m = "mouth_"
    p[m + "left_corner"] = (-mw, my, 0.05)
    p[m + "upper_lip_left_contour2"] = (-0.55 * mw, my - 0.85 * ul, 0.12)
    p[m + "upper_lip_left_contour1"] = (-0.18 * mw, my - 1.1 * ul, 0.15)
    p[m + "upper_lip_top"] = (0.0, my - 0.9 * ul, 0.16)
    p[m + "upper_lip_left_contour3"] = (-0.6 * mw, my - 0.008, 0.1)
    p[m + "upper_lip_left_contour4"] = (-0.25 * mw, my - 0.012, 0.12)
    p[m + "upper_lip_bottom"] = (0.0, my - 0.012, 0.13)
    p[m + "lower_lip_left_contour1"] = (-0.45 * mw, my + 0.01, 0.1)
    p[m + "lower_lip_top"] = (0.0, my + 0.012, 0.12)
    p[m + "lower_lip_left_contour2"] = (-0.6 * mw, my + 0.8 * ll, 0.1)
    p[m + "lower_lip_left_contour3"] = (-0.25 * mw, my + ll, 0.12)
    p[m + "lower_lip_bottom"] = (0.0, my + 1.02 * ll, 0.13)
    return p


def _arc(rx: float, ry: float, n: int, a0: float, a1: float) -> Points:
    a = np.linspace(a0, a1, n)
    return np.stack([rx * np.cos(a), TEMPLE_Y - ry * np.sin(a), np.full(n, -0.2)], axis=1)


def neutral_points(ident: Identity) -> Points:
    """[N_ALL, 3] neutral face of the identity."""
    half = _left_half(ident)
    pts = np.zeros((N_ALL, 3))
    for name, (x, y, z) in half.items():
        pts[idx(name)] = (x, y, z)
        twin = mirror_name(name)
        if twin != name:
            pts[idx(twin)] = (-x, y, z)
    w, fh = ident.face_width, ident.forehead
    pts[FORE] = _arc(0.98 * w, fh, N_FORE, 0.0, math.pi)  # image-right temple over the top to image-left
    pts[HAIRLINE] = _arc(0.98 * w, fh * (1 - ident.hairline), N_HAIRLINE, 0.0, math.pi)
    pts[SCALP] = _arc(1.12 * w, fh * 1.12 + 0.05, N_SCALP, math.pi, 0.0)  # image-left to image-right
    d = ident.face_length
    pts[NECK] = [(-0.42, d - 0.3, -0.5), (0.42, d - 0.3, -0.5), (0.46, d + 1.2, -0.5), (-0.46, d + 1.2, -0.5)]
    pts[SHIRT] = [
        (-0.5, d + 0.55, -0.6),
        (0.5, d + 0.55, -0.6),
        (2.4, d + 1.1, -0.6),
        (2.6, d + 4.0, -0.6),
        (-2.6, d + 4.0, -0.6),
        (-2.4, d + 1.1, -0.6),
    ]
    hl = TEMPLE_Y + ident.hair_length
    pts[HAIR_BACK] = [(1.15 * w, hl, -0.4), (-1.15 * w, hl, -0.4)]
    return pts


def face_outline() -> list[int]:
    """Indices of the skin outline: contour temple to temple, then the forehead arc back over the top."""
    return [*contour_path(), *range(FORE.start, FORE.stop)]
