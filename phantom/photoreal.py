"""Photo-real frames: a real portrait warped onto the phantom's moving mesh, so the truth stays exact.

The mesh has the 106 landmarks, the forehead and scalp arcs and the top of the neck (the phantom's render-only
points) and a ring of anchors around the head. Per frame the whole portrait is first placed by the similarity that
best maps its points onto the frame's (background, hair and shoulders move rigidly with the head), then every mesh
triangle inside the ring is warped piecewise-affinely (:mod:`phantom.warp`): each photo landmark lands exactly on the
frame's truth point, while the ring, placed by that same similarity, joins the background without a seam.

What a warp cannot show is painted over it: an opening mouth gets a dark cavity with teeth where the lips part wider
than on the photo, and closing eyes get a lash line along the lid (the lid itself is the skin above the eye, which
the warp stretches down). The light falls from the identity's direction as in the cartoon, and the same sensor noise
is added. About 5-10x slower than the cartoon (``benchmarks/phantom.py``: ``fps_photoreal_640x480``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from phantom.geometry import FORE, NECK, SCALP
from phantom.layout import N_POINTS, eye_path, idx, inner_lip_path
from phantom.photo import INNER_LOWER, INNER_UPPER, OUTER_LOWER, OUTER_UPPER, PhotoFace
from phantom.render import SensorNoise, light_map
from phantom.spec import Identity
from phantom.warp import PiecewiseAffine, similarity, triangulate, zipper

RGB = npt.NDArray[np.uint8]
Pts = npt.NDArray[np.float64]
SHIFT = 4
ONE = 1 << SHIFT
N_RING = 24
MESH_EXTRAS = [*range(FORE.start, FORE.stop), *range(SCALP.start, SCALP.stop), NECK.start, NECK.start + 1]
EYE_CENTRES = (idx("left_eye_center"), idx("right_eye_center"))
# The eye centres sit on the pupils in a photo (one vertex each: two at one place would make no triangle).
MESH = np.array([*(i for i in range(N_POINTS) if i not in EYE_CENTRES), *MESH_EXTRAS])
_INNER = np.array(inner_lip_path())
_UPPER_INNER = _INNER[:6]
_LOWER_INNER = np.concatenate([_INNER[6:], _INNER[:1]])
_EYES = {side: np.array(eye_path(side)) for side in ("left", "right")}
_LIP_PAIRS = (  # (upper inner, lower inner) points facing each other across the mouth opening
    np.array([idx(f"mouth_{n}") for n in ("upper_lip_left_contour4", "upper_lip_bottom", "upper_lip_right_contour4")]),
    np.array([idx(f"mouth_{n}") for n in ("lower_lip_left_contour1", "lower_lip_top", "lower_lip_right_contour1")]),
)


def lip_gap(pts: Pts) -> float:
    """How far the lips are parted: the mean vertical distance between facing inner lip points."""
    return float((pts[_LIP_PAIRS[1], 1] - pts[_LIP_PAIRS[0], 1]).mean())


def _ring(face: PhotoFace) -> Pts:
    """Anchors on an ellipse around the head, in face units (x, y)."""
    half_width = float(np.abs(face.neutral[:N_POINTS, 0]).max())
    a = np.linspace(0.0, 2 * math.pi, N_RING, endpoint=False)
    return np.stack([2.0 * half_width * np.cos(a), 0.35 + 2.3 * np.sin(a)], axis=1)


def _apply(m: Pts, pts: Pts) -> Pts:
    out: Pts = pts @ m[:, :2].T + m[:, 2]
    return out


class PhotoRenderer:
    """Draws frames of one photo identity at one size (the interface of :class:`phantom.render.FaceRenderer`)."""

    def __init__(
        self,
        face: PhotoFace,
        ident: Identity,
        width: int,
        height: int,
        seed: int,
        noise: bool = True,
        interpolation: int = cv2.INTER_LINEAR,
    ) -> None:
        self.face = face
        self.interpolation = interpolation
        self.width, self.height = width, height
        self.wears_glasses = face.glasses
        rng = np.random.default_rng([seed, 23])
        light = light_map(ident, width, height)
        self.light = np.repeat(np.clip(light * 128.0, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
        self.noise = SensorNoise(rng, ident.noise_sigma, width, height) if noise and ident.noise_sigma > 0 else None
        self.blur = ident.blur
        ring = _ring(face)
        self.ring_source = face.to_photo(ring)
        reference = np.concatenate([face.neutral[MESH, :2], ring])
        # triangulate with the mouth open a little, so no triangle spans the lips
        mouth = reference.copy()
        for k, i in enumerate(MESH):
            if i in _UPPER_INNER:
                mouth[k, 1] -= 0.04
            elif i in _LOWER_INNER:
                mouth[k, 1] += 0.04
        position = {int(i): k for k, i in enumerate(MESH)}

        def at(names: list[str]) -> list[int]:
            return [position[idx("mouth_" + n)] for n in names]

        ends = (["left_corner"], ["right_corner"])
        outer_up, inner_up = at([*ends[0], *OUTER_UPPER, *ends[1]]), at([*ends[0], *INNER_UPPER, *ends[1]])
        inner_low, outer_low = at([*ends[0], *INNER_LOWER, *ends[1]]), at([*ends[0], *OUTER_LOWER, *ends[1]])
        cavity = zipper(inner_up, inner_low, mouth)
        lips = [*zipper(outer_up, inner_up, mouth), *cavity, *zipper(inner_low, outer_low, mouth)]
        under = [sorted({v for t in cavity for v in t})]
        under += [[position[int(i)] for i in (*_EYES[s], idx(f"{s}_eye_pupil"))] for s in ("left", "right")]
        triangles, order = triangulate(mouth, under, hole=[*outer_up, *outer_low[::-1][1:-1]], filled=lips)
        self.warper = PiecewiseAffine(triangles, order)
        cheeks = face.source[[idx("contour_left8"), idx("nose_tip"), idx("contour_right8")]].mean(axis=0)
        x, y = (int(v) for v in np.round(cheeks))
        patch = face.image[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4].reshape(-1, 3)
        med = np.median(patch, axis=0)
        self.skin_rgb = (int(med[0]), int(med[1]), int(med[2]))
        self.lip_line = self._sample(_LOWER_INNER, 0.5)  # the shadow between closed lips
        gap = lip_gap(face.source)
        if gap > 3:  # the portrait shows its teeth: take their colour
            self.teeth = self._sample(_UPPER_INNER, 0.85, down=0.35 * gap)
        else:  # a warm off-white, tinted by the skin so it sits in the picture's colour balance
            tint = 0.7 * np.array([222.0, 214.0, 196.0]) + 0.3 * np.array(self.skin_rgb)
            self.teeth = (int(tint[0]), int(tint[1]), int(tint[2]))

    def _sample(self, points: npt.NDArray[np.intp], shade: float, down: float = 0.0) -> tuple[int, int, int]:
        """The portrait's median colour at some points (shifted ``down`` px), darkened by ``shade``."""
        at = np.round(self.face.source[points] + (0.0, down)).astype(int)
        h, w = self.face.image.shape[:2]
        px = self.face.image[np.clip(at[:, 1], 0, h - 1), np.clip(at[:, 0], 0, w - 1)].astype(np.float64)
        med = np.median(px, axis=0) * shade
        return (int(med[0]), int(med[1]), int(med[2]))

    def mesh_points(self, pts: Pts) -> tuple[Pts, Pts, Pts]:
        """(source, destination) of every mesh vertex for a frame's projected points, and the frame's similarity."""
        src = self.face.source[MESH]
        dst = pts[MESH]
        sim = similarity(self.face.source[:N_POINTS], pts[:N_POINTS])
        return np.concatenate([src, self.ring_source]), np.concatenate([dst, _apply(sim, self.ring_source)]), sim

    def draw(self, pts: Pts, unit_px: float) -> RGB:
        """One RGB frame from the projected points [N_ALL, 2]; ``unit_px`` is one inter-ocular distance in px."""
        img = self.face.image
        src, dst, sim = self.mesh_points(pts)
        frame = np.asarray(
            cv2.warpAffine(img, sim, (self.width, self.height), flags=self.interpolation,
                           borderMode=cv2.BORDER_REFLECT_101),
            dtype=np.uint8,
        )  # fmt: skip
        ring = dst[len(MESH) :]
        x0, y0 = max(0, int(np.floor(ring[:, 0].min()))), max(0, int(np.floor(ring[:, 1].min())))
        x1 = min(self.width, int(np.ceil(ring[:, 0].max())) + 1)
        y1 = min(self.height, int(np.ceil(ring[:, 1].max())) + 1)
        if x1 > x0 and y1 > y0:
            self.warp_mesh(frame, src, dst, (x0, y0, x1, y1))
        scale = float(math.hypot(sim[0, 0], sim[1, 0]))
        self._mouth(frame, pts, unit_px, scale)
        for side in ("left", "right"):
            self._lashes(frame, pts, side, unit_px, scale)
        cv2.multiply(frame, self.light, dst=frame, scale=1.0 / 128.0)
        if self.blur:
            cv2.GaussianBlur(frame[y0:y1, x0:x1], (3, 3), 0.6, dst=frame[y0:y1, x0:x1])
        return frame

    def warp_mesh(self, frame: RGB, src: Pts, dst: Pts, roi: tuple[int, int, int, int]) -> None:
        """Warp every mesh triangle of the portrait into ``frame`` inside ``roi`` (one dense map, one remap)."""
        x0, y0, x1, y1 = roi
        map_x, map_y, covered = self.warper.maps(src, dst, roi)
        patch = cv2.remap(self.face.image, map_x, map_y, self.interpolation, borderMode=cv2.BORDER_REFLECT_101)
        cv2.copyTo(patch, covered.view(np.uint8), frame[y0:y1, x0:x1])

    def _mouth(self, frame: RGB, pts: Pts, unit_px: float, scale: float) -> None:
        """The inside of the mouth where the warp cannot show it: where the lips meet although they are parted on the
        photo (teeth would show through slivers), a dark closed-lip line; where they part wider than on the photo, a
        cavity with teeth."""
        src = self.face.source
        photo_gap = lip_gap(src) * scale
        gap = lip_gap(pts)
        opening = float(np.clip((gap - photo_gap - 1.0) / 4.0, 0.0, 1.0))
        closing = float(np.clip((0.5 * photo_gap - gap) / max(1e-6, 0.3 * photo_gap), 0.0, 1.0))
        if opening <= 0.0 and closing <= 0.0:
            return
        inner = pts[_INNER]
        x0, y0 = max(0, int(np.floor(inner[:, 0].min())) - 2), max(0, int(np.floor(inner[:, 1].min())) - 2)
        x1 = min(self.width, int(np.ceil(inner[:, 0].max())) + 3)
        y1 = min(self.height, int(np.ceil(inner[:, 1].max())) + 3)
        if x1 <= x0 or y1 <= y0:
            return
        off = np.array([x0, y0], np.float64)
        sub = frame[y0:y1, x0:x1]
        mask = np.zeros(sub.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round((inner - off) * ONE).astype(np.int32)], 255, cv2.LINE_AA, SHIFT)
        paint = np.empty_like(sub)
        if closing > 0.0:
            paint[:] = self.lip_line
            alpha = closing
        else:
            paint[:] = (62, 20, 26)
            tooth = 0.085 * unit_px
            upper, lower = pts[_UPPER_INNER] - off, pts[_LOWER_INNER] - off
            for line, depth, shade in ((upper, tooth, 1.0), (lower, -0.55 * tooth, 0.8)):
                band = np.concatenate([line, line[::-1] + np.array([0.0, depth])])
                colour = tuple(int(c * shade) for c in self.teeth)
                cv2.fillPoly(paint, [np.round(band * ONE).astype(np.int32)], colour, cv2.LINE_AA, SHIFT)
            paint = np.asarray(cv2.GaussianBlur(paint, (3, 3), 0.8), np.uint8)
            alpha = opening
        weight = (cv2.GaussianBlur(mask, (3, 3), 0.8).astype(np.float32) * (alpha / 255.0))[:, :, None]
        sub[:] = (sub * (1.0 - weight) + paint * weight).astype(np.uint8)

    def _lashes(self, frame: RGB, pts: Pts, side: str, unit_px: float, scale: float) -> None:
        """A lash line along a closing lid (the warp alone shows a closed eye as a bare fold of skin)."""
        top, bottom = idx(f"{side}_eye_top"), idx(f"{side}_eye_bottom")
        open_photo = float(self.face.source[bottom, 1] - self.face.source[top, 1]) * scale
        opening = float(pts[bottom, 1] - pts[top, 1])
        shut = float(np.clip(1.0 - opening / max(1e-6, 0.6 * open_photo), 0.0, 1.0))
        if shut <= 0.05:
            return
        lid = pts[_EYES[side][:5]]
        x0, y0 = max(0, int(lid[:, 0].min()) - 3), max(0, int(lid[:, 1].min()) - 3)
        x1, y1 = min(self.width, int(lid[:, 0].max()) + 4), min(self.height, int(lid[:, 1].max()) + 4)
        if x1 <= x0 or y1 <= y0:
            return
        sub = frame[y0:y1, x0:x1]
        drawn = sub.copy()
        line = np.round((lid - (x0, y0)) * ONE).astype(np.int32)
        cv2.polylines(drawn, [line], False, (38, 28, 26), max(1, round(unit_px * 0.018)), cv2.LINE_AA, SHIFT)
        cv2.addWeighted(drawn, shut, sub, 1.0 - shut, 0.0, dst=sub)

    def add_noise(self, frame: RGB, noise_offset: tuple[int, int]) -> None:
        """Sensor noise, in place (last, after overlays)."""
        if self.noise is not None:
            self.noise.add(frame, noise_offset)
