"""Facial movements as linear deformation controls on the neutral face, one set per image side.

A control at 1.0 is a full healthy movement (e.g. ``eye_close`` 1.0 = lids meet). Each control is a displacement
field written for the image-left half and mirrored; the field is then split into an image-left and an image-right
control by a soft weight on the neutral x (midline points take half from each), so palsy can weaken one side.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from phantom.geometry import N_ALL, Points, mirror_name
from phantom.layout import contour_path, idx

CONTROLS = (
    "brow_raise",
    "brow_lower",
    "eye_close",
    "smile",
    "pucker",
    "jaw_open",
    "lip_part",
    "nose_scrunch",
    "cheek_puff",
    "lip_stretch",
    "droop",
)
N_CONTROLS = len(CONTROLS)
SIDES = ("left", "right")

_BROW = [
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
_BROW_INNER = ["upper_right_corner", "lower_right_corner", "upper_right_quarter", "lower_right_quarter"]
_UPPER_LID = ["top", "upper_left_quarter", "upper_right_quarter"]
_LOWER_LID = ["bottom", "lower_left_quarter", "lower_right_quarter"]
_LOWER_LIP = ["lower_lip_left_contour1", "lower_lip_left_contour2", "lower_lip_left_contour3"]
_LOWER_MID = ["lower_lip_bottom", "lower_lip_top"]


def control_index(name: str, side: str) -> int:
    """Column of a control in the per-frame control vector (image side 'left' or 'right')."""
    return CONTROLS.index(name) * 2 + SIDES.index(side)


class _Field:
    """Builds one bilateral displacement field from image-left and midline entries."""

    def __init__(self) -> None:
        self.d = np.zeros((N_ALL, 3))

    def put(self, name: str, dx: float, dy: float, dz: float = 0.0) -> None:
        self.d[idx(name)] = (dx, dy, dz)
        twin = mirror_name(name)
        if twin != name:
            self.d[idx(twin)] = (-dx, dy, dz)

    def put_many(self, prefix: str, names: list[str], dx: float, dy: float, dz: float = 0.0) -> None:
        for n in names:
            self.put(prefix + n, dx, dy, dz)


def _fields(neutral: Points) -> dict[str, Points]:
    y = neutral[:, 1]
    out: dict[str, Points] = {}

    f = _Field()
    f.put_many("left_eyebrow_", _BROW, 0.0, -0.13)
    f.put("left_eyebrow_left_corner", 0.0, -0.1)
    f.put_many("left_eye_", _UPPER_LID, 0.0, -0.02)
    out["brow_raise"] = f.d

    f = _Field()
    f.put_many("left_eyebrow_", _BROW, 0.02, 0.06)
    f.put_many("left_eyebrow_", _BROW_INNER, 0.05, 0.09)
    f.put("left_eyebrow_left_corner", 0.01, 0.04)
    f.put_many("left_eye_", _UPPER_LID, 0.0, 0.025)
    out["brow_lower"] = f.d

    f = _Field()
    e = "left_eye_"
    for up, low in (("top", "bottom"), ("upper_left_quarter", "lower_left_quarter")):
        f.put(e + up, 0.0, y[idx(e + low)] - y[idx(e + up)] - 0.014)
    f.put(e + "upper_right_quarter", 0.0, y[idx(e + "lower_right_quarter")] - y[idx(e + "upper_right_quarter")] - 0.014)
    f.put_many(e, _LOWER_LID, 0.0, -0.012)
    f.put(e + "center", 0.0, y[idx(e + "bottom")] - 0.013 - y[idx(e + "center")])
    out["eye_close"] = f.d

    f = _Field()
    m = "mouth_"
    f.put(m + "left_corner", -0.1, -0.08)
    f.put(m + "upper_lip_left_contour2", -0.06, -0.05)
    f.put(m + "upper_lip_left_contour1", -0.02, -0.03)
    f.put(m + "upper_lip_left_contour3", -0.07, -0.06)
    f.put(m + "upper_lip_left_contour4", -0.02, -0.04)
    f.put(m + "upper_lip_top", 0.0, -0.02)
    f.put(m + "upper_lip_bottom", 0.0, -0.035)
    f.put(m + "lower_lip_left_contour1", -0.05, -0.03)
    f.put(m + "lower_lip_left_contour2", -0.06, -0.04)
    f.put(m + "lower_lip_left_contour3", -0.02, -0.01)
    f.put(m + "lower_lip_top", 0.0, 0.0)
    f.put_many("left_eye_", _LOWER_LID, 0.0, -0.025)
    f.put("nose_left_contour3", -0.015, -0.01)
    f.put("nose_left_contour4", -0.015, -0.01)
    for i in range(6, 13):
        f.put(f"contour_left{i}", -0.02, -0.01)
    out["smile"] = f.d

    f = _Field()
    f.put(m + "left_corner", 0.14, 0.0, 0.05)
    f.put(m + "upper_lip_left_contour2", 0.08, -0.01, 0.08)
    f.put(m + "upper_lip_left_contour1", 0.03, -0.015, 0.08)
    f.put(m + "upper_lip_left_contour3", 0.09, 0.0, 0.08)
    f.put(m + "upper_lip_left_contour4", 0.03, 0.0, 0.08)
    f.put(m + "lower_lip_left_contour1", 0.07, 0.0, 0.08)
    f.put(m + "lower_lip_left_contour2", 0.08, 0.01, 0.08)
    f.put(m + "lower_lip_left_contour3", 0.03, 0.015, 0.08)
    f.put(m + "upper_lip_top", 0.0, -0.02, 0.08)
    f.put(m + "lower_lip_bottom", 0.0, 0.02, 0.08)
    out["pucker"] = f.d

    f = _Field()
    f.put_many(m, _LOWER_LIP, 0.0, 0.3)
    f.put_many(m, _LOWER_MID, 0.0, 0.32)
    f.put(m + "lower_lip_left_contour2", 0.02, 0.26)
    f.put(m + "left_corner", 0.04, 0.1)
    for n in ("upper_lip_left_contour3", "upper_lip_left_contour4", "upper_lip_bottom"):
        f.put(m + n, 0.0, -0.015)
    pivot = 0.3
    for i in contour_path():
        w = float(np.clip((y[i] - pivot) / (y[idx("contour_chin")] - pivot), 0.0, 1.0))
        f.d[i] = (-np.sign(neutral[i, 0]) * 0.02 * w, 0.32 * w, 0.0)
    out["jaw_open"] = f.d

    f = _Field()
    f.put(m + "upper_lip_left_contour3", 0.0, -0.05)
    f.put(m + "upper_lip_left_contour4", 0.0, -0.065)
    f.put(m + "upper_lip_bottom", 0.0, -0.07)
    f.put(m + "upper_lip_left_contour2", 0.0, -0.02)
    f.put(m + "upper_lip_left_contour1", 0.0, -0.03)
    f.put(m + "upper_lip_top", 0.0, -0.03)
    f.put(m + "lower_lip_left_contour1", 0.0, 0.05)
    f.put(m + "lower_lip_top", 0.0, 0.065)
    f.put(m + "lower_lip_left_contour2", 0.0, 0.02)
    f.put(m + "lower_lip_left_contour3", 0.0, 0.03)
    f.put(m + "lower_lip_bottom", 0.0, 0.03)
    f.put(m + "left_corner", -0.03, 0.0)
    out["lip_part"] = f.d

    f = _Field()
    for i in (2, 3, 4, 5):
        f.put(f"nose_left_contour{i}", -0.02, -0.08)
    f.put("nose_middle_contour", 0.0, -0.03)
    f.put("nose_tip", 0.0, -0.02)
    for n in ("upper_lip_left_contour1", "upper_lip_left_contour2", "upper_lip_top"):
        f.put(m + n, 0.0, -0.04)
    for n in ("upper_lip_left_contour3", "upper_lip_left_contour4", "upper_lip_bottom"):
        f.put(m + n, 0.0, -0.035)
    f.put(m + "left_corner", 0.0, -0.02)
    f.put_many("left_eye_", _LOWER_LID, 0.0, -0.03)
    f.put_many("left_eye_", _UPPER_LID, 0.0, 0.03)
    f.put_many("left_eyebrow_", _BROW_INNER, 0.02, 0.04)
    out["nose_scrunch"] = f.d

    f = _Field()
    for i in contour_path():
        bump = float(np.exp(-(((y[i] - 0.9) / 0.35) ** 2)))
        f.d[i] = (np.sign(neutral[i, 0]) * 0.12 * bump, 0.0, 0.0)
    f.put(m + "left_corner", 0.04, 0.0, 0.04)
    out["cheek_puff"] = f.d

    f = _Field()
    f.put(m + "left_corner", -0.12, -0.01)
    f.put(m + "upper_lip_left_contour2", -0.08, 0.0)
    f.put(m + "upper_lip_left_contour1", -0.03, 0.01)
    f.put(m + "upper_lip_left_contour3", -0.09, 0.0)
    f.put(m + "upper_lip_left_contour4", -0.04, 0.0)
    f.put(m + "lower_lip_left_contour1", -0.07, 0.0)
    f.put(m + "lower_lip_left_contour2", -0.08, -0.01)
    f.put(m + "lower_lip_left_contour3", -0.03, -0.02)
    f.put(m + "upper_lip_top", 0.0, 0.01)
    f.put(m + "lower_lip_bottom", 0.0, -0.02)
    out["lip_stretch"] = f.d

    f = _Field()
    f.put(m + "left_corner", 0.0, 0.06)
    for n in (
        "upper_lip_left_contour2",
        "upper_lip_left_contour3",
        "lower_lip_left_contour1",
        "lower_lip_left_contour2",
    ):
        f.put(m + n, 0.0, 0.03)
    f.put_many("left_eyebrow_", _BROW, 0.0, 0.05)
    f.put_many("left_eye_", _LOWER_LID, 0.0, 0.02)
    out["droop"] = f.d
    return out


def control_basis(neutral: Points) -> npt.NDArray[np.float64]:
    """[2 * N_CONTROLS, N_ALL * 3]: row ``control_index(c, side)`` is that control's displacement, flattened."""
    x = neutral[:, 0]
    w_left = np.clip(0.5 - x / 0.2, 0.0, 1.0)[:, None]
    fields = _fields(neutral)
    rows = []
    for name in CONTROLS:
        d = fields[name]
        rows.append((d * w_left).reshape(-1))
        rows.append((d * (1.0 - w_left)).reshape(-1))
    return np.stack(rows)
