"""Real faces for the photo-real mode: portraits with their 106 points, and the phantom identities made from them.

The portraits ship inside packages the project already installs: scikit-image's ``data.astronaut()`` (Eileen
Collins, NASA) and matplotlib's ``sample_data/grace_hopper.jpg`` (US Navy), both public domain. Their face points
were marked by hand (``photos.json``): eyes, brows and nose point by point, lips and the face contour as polylines
that :func:`photo_points` resamples where the cartoon's layout puts its points, so a photo's 106 points follow
the same conventions as the phantom's own.

:func:`photo_face` turns an identity seed into a :class:`PhotoFace`: which portrait, mirrored or not, a skin tone
and colour grade, and a slightly different face geometry (contour width and depth, eye size, nose length, mouth width
and height, brow height) that the warp imposes on the photo. The phantom's neutral face for the identity is the
portrait's own geometry (in inter-ocular units, with depth from the cartoon template), brought to a neutral
expression where the portrait smiles.
"""

from __future__ import annotations

import dataclasses
import json
import math
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np
import numpy.typing as npt

from phantom.deform import control_basis, control_index
from phantom.geometry import FORE, N_ALL, NECK, mirror_name, neutral_points
from phantom.layout import INDEX, N_POINTS, NAMES, contour_path, idx
from phantom.spec import Identity

F64 = npt.NDArray[np.float64]
RGB = npt.NDArray[np.uint8]
PHOTOS = ("astronaut", "grace_hopper")
_LIGHT_TONE = np.array([1.04, 1.0, 0.97])
_DARK_TONE = np.array([0.45, 0.34, 0.28])
INNER_UPPER = ["upper_lip_left_contour3", "upper_lip_left_contour4", "upper_lip_bottom",
                "upper_lip_right_contour4", "upper_lip_right_contour3"]  # fmt: skip
INNER_LOWER = ["lower_lip_left_contour1", "lower_lip_top", "lower_lip_right_contour1"]
OUTER_UPPER = ["upper_lip_left_contour2", "upper_lip_left_contour1", "upper_lip_top",
                "upper_lip_right_contour1", "upper_lip_right_contour2"]  # fmt: skip
OUTER_LOWER = ["lower_lip_left_contour2", "lower_lip_left_contour3", "lower_lip_bottom",
                "lower_lip_right_contour3", "lower_lip_right_contour2"]  # fmt: skip
_LIP_LINES = {
    "outer_upper_lip": OUTER_UPPER,
    "inner_upper_lip": INNER_UPPER,
    "inner_lower_lip": INNER_LOWER,
    "outer_lower_lip": OUTER_LOWER,
}


@lru_cache(maxsize=1)
def _marks() -> dict[str, dict[str, object]]:
    text = resources.files("phantom").joinpath("photos.json").read_text()
    out: dict[str, dict[str, object]] = json.loads(text)["photos"]
    return out


@lru_cache(maxsize=len(PHOTOS))
def load_photo(name: str) -> RGB:
    """The portrait ``name`` as RGB uint8 (from the package that ships it)."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; use one of {PHOTOS}")
    try:
        if name == "astronaut":
            from skimage import data

            img = np.asarray(data.astronaut(), dtype=np.uint8)  # type: ignore[no-untyped-call]
        else:
            from matplotlib import cbook

            path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
            bgr = cv2.imread(str(path))
            if bgr is None:
                raise OSError(f"cannot read {path}")
            img = np.ascontiguousarray(bgr[:, :, ::-1])
    except (ImportError, OSError) as exc:
        raise RuntimeError(
            f"the photo-real phantom needs the {name} portrait from scikit-image / matplotlib (project dependencies): "
            f"{exc}"
        ) from exc
    return img


def _template() -> F64:
    """The cartoon's neutral face of a middle identity: where the layout puts points along lips and contour."""
    return neutral_points(Identity.from_seed(0))


def _along(line: F64, fractions: F64) -> F64:
    """Points at arc-length ``fractions`` (0..1) along a polyline."""
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    at = np.concatenate([[0.0], np.cumsum(seg)]) / max(1e-9, float(seg.sum()))
    return np.stack([np.interp(fractions, at, line[:, 0]), np.interp(fractions, at, line[:, 1])], axis=1)


def _arc_fractions(points: F64) -> F64:
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    out: F64 = np.concatenate([[0.0], np.cumsum(seg)]) / max(1e-9, float(seg.sum()))
    return out


def photo_points(name: str) -> F64:
    """[106, 2] pixel positions of the layout's points on the portrait ``name``."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; use one of {PHOTOS}")
    marks = _marks()[name]
    pts = np.full((N_POINTS, 2), np.nan)
    for key, xy in dict(marks["points"]).items():  # type: ignore[call-overload]
        pts[idx(key)] = xy
    for side in ("left", "right"):
        pts[idx(f"{side}_eye_center")] = pts[idx(f"{side}_eye_pupil")]
    lines = {k: np.asarray(v, dtype=np.float64) for k, v in dict(marks["lines"]).items()}  # type: ignore[call-overload]
    tpl = _template()
    corners = lines["outer_upper_lip"][[0, -1]]
    pts[idx("mouth_left_corner")], pts[idx("mouth_right_corner")] = corners
    half = (tpl[idx("mouth_right_corner"), 0] - tpl[idx("mouth_left_corner"), 0]) / 2
    for line, names in _LIP_LINES.items():
        poly = lines[line]
        frac = (tpl[[idx("mouth_" + n) for n in names], 0] + half) / (2 * half)
        x = corners[0, 0] + frac * (corners[1, 0] - corners[0, 0])
        pts[[idx("mouth_" + n) for n in names]] = np.stack([x, np.interp(x, poly[:, 0], poly[:, 1])], axis=1)
    path = contour_path()  # left temple .. chin .. right temple
    chin = len(path) // 2
    for side, ids in (("left", path[: chin + 1]), ("right", path[chin:][::-1])):
        pts[ids] = _along(lines[f"{side}_contour"], _arc_fractions(tpl[ids, :2]))
    if np.isnan(pts).any():
        missing = [NAMES[i] for i in np.nonzero(np.isnan(pts[:, 0]))[0]]
        raise ValueError(f"photo {name}: no mark for {missing}")
    return pts


_MIRROR = np.array([INDEX[mirror_name(n)] for n in NAMES])


@dataclasses.dataclass(frozen=True)
class PhotoFace:
    """One photo identity: the graded portrait, the portrait-px position of each of the phantom's points (``source``,
    [N_ALL, 2]) and the identity's neutral face in face units (``neutral``, [N_ALL, 3])."""

    name: str
    image: RGB
    source: F64
    neutral: F64
    glasses: bool
    mirrored: bool

    def to_photo(self, face_xy: F64) -> F64:
        """Face-unit (x, y) -> portrait px through this photo's normalisation (eye midpoint, roll, inter-ocular)."""
        left, right = self.source[idx("left_eye_center")], self.source[idx("right_eye_center")]
        mid, d = (left + right) / 2, right - left
        scale, angle = float(np.hypot(*d)), math.atan2(d[1], d[0])
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        out: F64 = mid + scale * face_xy @ rot.T
        return out


def _normalise(pts: F64) -> F64:
    left, right = pts[idx("left_eye_center")], pts[idx("right_eye_center")]
    mid, d = (left + right) / 2, right - left
    angle = -math.atan2(d[1], d[0])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    out: F64 = (pts - mid) @ rot.T / float(np.hypot(*d))
    return out


def _close_lips(neutral: F64) -> None:
    """Bring the inner lip lines together on their middle line; the outer lines follow half way."""
    corners = neutral[[idx("mouth_left_corner"), idx("mouth_right_corner")], :2]
    lines = {}
    for key, names in (("upper", INNER_UPPER), ("lower", INNER_LOWER)):
        ids = [idx("mouth_" + n) for n in names]
        line = np.concatenate([corners[:1], neutral[ids, :2], corners[1:]])
        lines[key] = line[np.argsort(line[:, 0])]
    for names, outer, sign in ((INNER_UPPER, OUTER_UPPER, -1), (INNER_LOWER, OUTER_LOWER, 1)):
        ids = [idx("mouth_" + n) for n in names]
        x = neutral[ids, 0]
        mid = (np.interp(x, *lines["upper"].T) + np.interp(x, *lines["lower"].T)) / 2
        shift = mid + sign * 0.004 - neutral[ids, 1]
        neutral[ids, 1] += shift
        neutral[[idx("mouth_" + n) for n in outer], 1] += 0.5 * float(shift.mean())


def _vary(neutral: F64, rng: np.random.Generator) -> None:
    """A slightly different face: contour width and depth, eye size, nose length, mouth width and height, brows."""
    u = rng.uniform(-1.0, 1.0, 7)
    contour = contour_path()
    neutral[contour, 0] *= 1.0 + 0.06 * u[0]
    low = [i for i in contour if neutral[i, 1] > 0]
    neutral[low, 1] *= 1.0 + 0.05 * u[1]
    for side in ("left", "right"):
        eye = [INDEX[n] for n in NAMES if n.startswith(f"{side}_eye_")]
        centre = neutral[idx(f"{side}_eye_center"), :2].copy()
        neutral[eye, :2] = centre + (neutral[eye, :2] - centre) * (1.0 + 0.07 * u[2])
    nose = [INDEX[n] for n in NAMES if n.startswith("nose_")]
    neutral[nose, 1] *= 1.0 + 0.06 * u[3]
    mouth = [INDEX[n] for n in NAMES if n.startswith("mouth_")]
    centre_x = float(neutral[mouth, 0].mean())
    neutral[mouth, 0] = centre_x + (neutral[mouth, 0] - centre_x) * (1.0 + 0.08 * u[4])
    neutral[mouth, 1] += 0.03 * u[5]
    brows = [INDEX[n] for n in NAMES if "eyebrow" in n]
    neutral[brows, 1] += 0.03 * u[6]


def _tone(image: RGB, source: F64, tone: float, grade: F64) -> RGB:
    """Shift the skin (face and neck, feathered) toward a darker or lighter tone; grade the whole picture."""
    hard = np.zeros(image.shape[:2], np.float32)
    outline = source[[*contour_path(), *range(FORE.start, FORE.stop)]]
    cv2.fillPoly(hard, [np.round(outline).astype(np.int32)], 1.0)
    cv2.fillPoly(hard, [np.round(source[NECK]).astype(np.int32)], 1.0)
    k = max(3, int(0.08 * float(np.ptp(outline[:, 0]))) | 1)
    mask = np.asarray(cv2.GaussianBlur(hard, (k, k), 0), np.float32)[:, :, None]
    gain = (_LIGHT_TONE * (1.0 - tone) + _DARK_TONE * tone).astype(np.float32)
    out = image.astype(np.float32) * (1.0 - mask + mask * gain[None, None, :])
    graded: RGB = np.clip(out * grade[None, None, :].astype(np.float32), 0, 255).astype(np.uint8)
    return graded


def photo_face(seed: int, ident: Identity) -> PhotoFace:
    """The photo identity of ``seed`` (``ident`` supplies the render-only outline points: forehead, hair, neck)."""
    rng = np.random.default_rng([seed, 71])
    name = PHOTOS[int(rng.integers(len(PHOTOS)))]
    mirrored = bool(rng.integers(2))
    marks = _marks()[name]
    image = load_photo(name)
    px = photo_points(name)
    if mirrored:
        image = np.ascontiguousarray(image[:, ::-1])
        px = px[_MIRROR] * (-1.0, 1.0) + (image.shape[1] - 1.0, 0.0)
    face_xy = _normalise(px)
    contour = contour_path()
    shaped = dataclasses.replace(  # the render-only outline (forehead, scalp, neck) sized to this face
        ident,
        face_width=float(np.abs(face_xy[contour, 0]).max()),
        face_length=float(face_xy[idx("contour_chin"), 1]),
    )
    neutral = neutral_points(shaped)
    neutral[:N_POINTS, :2] = face_xy
    basis = control_basis(neutral)
    settings = dict(marks["neutral"])  # type: ignore[call-overload]
    weights = np.zeros(basis.shape[0])
    for control, weight in dict(settings["controls"]).items():
        for side in ("left", "right"):
            weights[control_index(control, side)] = float(weight)
    photographed = neutral.copy()  # the photo's own expression: the warp's source
    neutral = neutral + (weights @ basis).reshape(N_ALL, 3)
    if settings["close_lips"]:
        _close_lips(neutral)
    _vary(neutral, rng)
    face = PhotoFace(name, image, np.zeros((N_ALL, 2)), neutral, bool(marks["glasses"]), mirrored)
    source = np.concatenate([px, np.zeros((N_ALL - N_POINTS, 2))])
    face = dataclasses.replace(face, source=source)
    source[N_POINTS:] = face.to_photo(photographed[N_POINTS:, :2])
    grade = rng.uniform(0.92, 1.08, 3) * rng.uniform(0.9, 1.1)
    return dataclasses.replace(face, image=_tone(image, source, float(rng.uniform()), grade))
