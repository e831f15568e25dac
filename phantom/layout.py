"""The insightface 106-point layout: index, name and group of every landmark the phantom draws.

Groups follow models.md §5: 0-32 contour, 33-42 left eye, 43-51 left brow, 52-71 mouth, 72-86 nose,
87-96 right eye, 97-105 right brow. Inside each group the points are the Face++-style names sorted alphabetically
(which is how 34/88 become the eye centres, 38/92 the pupils, 52/61 the mouth corners and 86 the nose tip).

"left" and "right" are image sides of an un-mirrored frame: the "left eye" (33-42) is the eye on the image-left,
which is the subject's right eye. Upper-lip contours 1-2 and lower-lip contours 2-3 are on the outer lip line;
upper-lip contours 3-4 and lower-lip contour 1 are on the inner line (next to the teeth).
"""

from __future__ import annotations

N_POINTS = 106


def _contour_names() -> list[str]:
    names = ["contour_chin"]
    names += sorted(f"contour_left{i}" for i in range(1, 17))
    names += sorted(f"contour_right{i}" for i in range(1, 17))
    return names


_EYE = [
    "bottom",
    "center",
    "left_corner",
    "lower_left_quarter",
    "lower_right_quarter",
    "pupil",
    "right_corner",
    "top",
    "upper_left_quarter",
    "upper_right_quarter",
]
_LEFT_BROW = [
    "left_corner",
    "lower_left_quarter",
    "lower_middle",
    "lower_right_corner",
    "lower_right_quarter",
    "upper_left_quarter",
    "upper_middle",
    "upper_right_corner",
    "upper_right_quarter",
]
_RIGHT_BROW = [
    "lower_left_corner",
    "lower_left_quarter",
    "lower_middle",
    "lower_right_quarter",
    "right_corner",
    "upper_left_corner",
    "upper_left_quarter",
    "upper_middle",
    "upper_right_quarter",
]
_MOUTH = sorted(
    ["left_corner", "right_corner", "lower_lip_bottom", "lower_lip_top", "upper_lip_bottom", "upper_lip_top"]
    + [f"lower_lip_{side}_contour{i}" for side in ("left", "right") for i in (1, 2, 3)]
    + [f"upper_lip_{side}_contour{i}" for side in ("left", "right") for i in (1, 2, 3, 4)]
)
_NOSE = sorted(
    ["bridge1", "bridge2", "bridge3", "middle_contour", "tip"]
    + [f"{side}_contour{i}" for side in ("left", "right") for i in range(1, 6)]
)

NAMES: tuple[str, ...] = tuple(
    _contour_names()
    + [f"left_eye_{n}" for n in _EYE]
    + [f"left_eyebrow_{n}" for n in _LEFT_BROW]
    + [f"mouth_{n}" for n in _MOUTH]
    + [f"nose_{n}" for n in _NOSE]
    + [f"right_eye_{n}" for n in _EYE]
    + [f"right_eyebrow_{n}" for n in _RIGHT_BROW]
)
INDEX: dict[str, int] = {name: i for i, name in enumerate(NAMES)}


def idx(name: str) -> int:
    """Index of a named landmark (raises KeyError with the name for a typo)."""
    return INDEX[name]


def contour_path() -> list[int]:
    """Contour indices in spatial order: image-left temple, down to the chin, up to the image-right temple."""
    left = [idx(f"contour_left{i}") for i in range(1, 17)]
    right = [idx(f"contour_right{i}") for i in range(16, 0, -1)]
    return [*left, idx("contour_chin"), *right]


def eye_path(side: str) -> list[int]:
    """Closed eye outline: outer/inner corner, upper lid, other corner, lower lid (clockwise on screen)."""
    p = f"{side}_eye_"
    return [
        idx(p + "left_corner"),
        idx(p + "upper_left_quarter"),
        idx(p + "top"),
        idx(p + "upper_right_quarter"),
        idx(p + "right_corner"),
        idx(p + "lower_right_quarter"),
        idx(p + "bottom"),
        idx(p + "lower_left_quarter"),
    ]


def brow_path(side: str) -> list[int]:
    """Closed brow outline, upper edge from the image-left end, then the lower edge back."""
    p = f"{side}_eyebrow_"
    if side == "left":
        names = ["left_corner", "upper_left_quarter", "upper_middle", "upper_right_quarter", "upper_right_corner"]
        names += ["lower_right_corner", "lower_right_quarter", "lower_middle", "lower_left_quarter"]
    else:
        names = ["upper_left_corner", "upper_left_quarter", "upper_middle", "upper_right_quarter", "right_corner"]
        names += ["lower_right_quarter", "lower_middle", "lower_left_quarter", "lower_left_corner"]
    return [idx(p + n) for n in names]


def outer_lip_path() -> list[int]:
    """Closed outer lip line: left corner, upper outer lip, right corner, lower outer lip."""
    names = ["left_corner", "upper_lip_left_contour2", "upper_lip_left_contour1", "upper_lip_top"]
    names += ["upper_lip_right_contour1", "upper_lip_right_contour2", "right_corner", "lower_lip_right_contour2"]
    names += ["lower_lip_right_contour3", "lower_lip_bottom", "lower_lip_left_contour3", "lower_lip_left_contour2"]
    return [idx("mouth_" + n) for n in names]


def inner_lip_path() -> list[int]:
    """Closed inner lip line (the mouth opening): left corner, upper inner lip, right corner, lower inner lip."""
    names = ["left_corner", "upper_lip_left_contour3", "upper_lip_left_contour4", "upper_lip_bottom"]
    names += ["upper_lip_right_contour4", "upper_lip_right_contour3", "right_corner", "lower_lip_right_contour1"]
    names += ["lower_lip_top", "lower_lip_left_contour1"]
    return [idx("mouth_" + n) for n in names]


LEFT_EYE_CENTRE = 34
RIGHT_EYE_CENTRE = 88
LEFT_PUPIL = 38
RIGHT_PUPIL = 92
MOUTH_LEFT_CORNER = 52
MOUTH_RIGHT_CORNER = 61
NOSE_TIP = 86
