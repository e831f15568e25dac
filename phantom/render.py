"""Drawing one frame of the phantom from its projected points, fast enough for >= 200 frames/s at 640x480.

Everything that does not move is computed once per (identity, size): the background, the lit skin textures and a
noise tile. Per frame the renderer only fills polygons (sub-pixel, ``shift=4``) inside small regions of interest,
copies textures through masks, adds a window of the noise tile at a per-frame offset and blurs the face region.
Pixel centres are at integer coordinates, as for the landmarks.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from phantom.geometry import FORE, HAIR_BACK, HAIRLINE, NECK, SCALP, SHIRT, face_outline
from phantom.layout import brow_path, eye_path, idx, inner_lip_path, outer_lip_path
from phantom.spec import Identity

RGB = npt.NDArray[np.uint8]
Pts = npt.NDArray[np.float64]
SHIFT = 4
ONE = 1 << SHIFT
NOISE_PAD = 32

_OUTLINE = np.array(face_outline())
_EYES = {side: np.array(eye_path(side)) for side in ("left", "right")}
_BROWS = {side: np.array(brow_path(side)) for side in ("left", "right")}
_OUTER_LIP = np.array(outer_lip_path())
_INNER_LIP = np.array(inner_lip_path())
_UPPER_INNER = _INNER_LIP[:7]  # left corner .. right corner along the upper inner lip
_LOWER_INNER = np.concatenate([_INNER_LIP[6:], _INNER_LIP[:1]])  # right corner .. left corner along the lower
_HAIR_CAP = np.concatenate([np.arange(SCALP.start, SCALP.stop), np.arange(HAIRLINE.start, HAIRLINE.stop)])
_HAIR_BACK = np.concatenate([np.arange(SCALP.start, SCALP.stop), np.arange(HAIR_BACK.start, HAIR_BACK.stop)])
_NOSE_SIDE = {
    "left": np.array([idx(f"nose_left_contour{i}") for i in (1, 2, 3, 4)]),
    "right": np.array([idx(f"nose_right_contour{i}") for i in (1, 2, 3, 4)]),
}
_NOSTRILS = [
    (idx("nose_left_contour4"), idx("nose_left_contour5")),
    (idx("nose_right_contour4"), idx("nose_right_contour5")),
]


def _fixed(pts: Pts) -> npt.NDArray[np.int32]:
    return np.round(pts * ONE).astype(np.int32)


def _lit_texture(colour: tuple[int, int, int], light: npt.NDArray[np.float32]) -> RGB:
    tex = light[:, :, None] * np.asarray(colour, np.float32)[None, None, :]
    out: RGB = np.clip(tex, 0, 255).astype(np.uint8)
    return out


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return (int(colour[0] * factor), int(colour[1] * factor), int(colour[2] * factor))


class SensorNoise:
    """Sensor noise from a precomputed tile: per frame a window of it at an offset is added and subtracted."""

    def __init__(self, rng: np.random.Generator, sigma: float, width: int, height: int) -> None:
        tile = rng.normal(0.0, sigma, (height + NOISE_PAD, width + NOISE_PAD, 3))
        self.pos: RGB = np.clip(tile, 0, 255).astype(np.uint8)
        self.neg: RGB = np.clip(-tile, 0, 255).astype(np.uint8)
        self.width, self.height = width, height

    def add(self, frame: RGB, offset: tuple[int, int]) -> None:
        ox, oy = offset[0] % NOISE_PAD, offset[1] % NOISE_PAD
        h, w = self.height, self.width
        cv2.add(frame, self.pos[oy : oy + h, ox : ox + w], dst=frame)
        cv2.subtract(frame, self.neg[oy : oy + h, ox : ox + w], dst=frame)


def light_map(ident: Identity, width: int, height: int) -> npt.NDArray[np.float32]:
    """[H, W] brightness of a light from the identity's direction (1 at the frame centre)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = float(max(width, height))
    lx, ly = np.cos(ident.light_angle), np.sin(ident.light_angle)
    out: npt.NDArray[np.float32] = 1.0 - ident.light_strength * ((xx - width / 2) * lx + (yy - height / 2) * ly) / (
        r / 2
    )
    return out


class FaceRenderer:
    """Draws frames of one identity at one size; holds only precomputed images, no per-frame state."""

    def __init__(self, ident: Identity, width: int, height: int, seed: int, noise: bool = True) -> None:
        self.ident = ident
        self.width = width
        self.height = height
        rng = np.random.default_rng([seed, 23])
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        light = light_map(ident, width, height)
        self.skin = _lit_texture(ident.skin, light)
        self.skin_dark = _lit_texture(_shade(ident.skin, 0.8), light)
        self.background = self._background(rng, xx, yy)
        self.noise = SensorNoise(rng, ident.noise_sigma, width, height) if noise and ident.noise_sigma > 0 else None
        self.wears_glasses = False  # a cartoon face has none of its own (the phantom may draw a pair over it)

    def _background(self, rng: np.random.Generator, xx: npt.NDArray[np.float32], yy: npt.NDArray[np.float32]) -> RGB:
        c1 = np.asarray(self.ident.background[0], np.float32)
        c2 = np.asarray(self.ident.background[1], np.float32)
        a = (yy / max(1, self.height - 1))[:, :, None]
        bg = np.clip(c1 * (1 - a) + c2 * a, 0, 255).astype(np.uint8)
        for _ in range(int(rng.integers(2, 6))):
            x0, y0 = int(rng.integers(0, self.width)), int(rng.integers(0, self.height))
            w, h = (
                int(rng.integers(self.width // 10, self.width // 3)),
                int(rng.integers(self.height // 10, self.height // 2)),
            )
            colour = tuple(int(v) for v in rng.integers(20, 235, 3))
            cv2.rectangle(bg, (x0, y0), (x0 + w, y0 + h), colour, -1)
        k = max(3, (min(self.width, self.height) // 40) | 1)
        return np.asarray(cv2.GaussianBlur(bg, (k, k), 0), dtype=np.uint8)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _roi(self, pts: Pts, pad: int = 2) -> tuple[int, int, int, int] | None:
        x0 = max(0, int(np.floor(pts[:, 0].min())) - pad)
        y0 = max(0, int(np.floor(pts[:, 1].min())) - pad)
        x1 = min(self.width, int(np.ceil(pts[:, 0].max())) + pad + 1)
        y1 = min(self.height, int(np.ceil(pts[:, 1].max())) + pad + 1)
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def _paint(self, frame: RGB, tex: RGB, poly: Pts) -> None:
        """Copy ``tex`` into ``frame`` inside the polygon, working only in its bounding box."""
        roi = self._roi(poly)
        if roi is None:
            return
        x0, y0, x1, y1 = roi
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [_fixed(poly - (x0, y0))], 255, cv2.LINE_8, SHIFT)
        cv2.copyTo(tex[y0:y1, x0:x1], mask, frame[y0:y1, x0:x1])

    # -- frame ---------------------------------------------------------------------------------------------
    def draw(self, pts: Pts, unit_px: float) -> RGB:
        """One RGB frame from the projected points [N_ALL, 2]; ``unit_px`` is one inter-ocular distance in px.
        Sensor noise is added separately (:meth:`add_noise`), after any overlay."""
        ident = self.ident
        frame = self.background.copy()
        cv2.fillPoly(frame, [_fixed(pts[SHIRT])], ident.shirt, cv2.LINE_8, SHIFT)
        if ident.hair_length > 0.15:
            cv2.fillPoly(frame, [_fixed(pts[_HAIR_BACK])], ident.hair, cv2.LINE_8, SHIFT)
        self._paint(frame, self.skin_dark, pts[NECK])
        outline = pts[_OUTLINE]
        self._paint(frame, self.skin_dark, outline)
        centre = outline.mean(axis=0)
        self._paint(frame, self.skin, centre + (outline - centre) * 0.9)
        self._paint(frame, self.skin, pts[FORE])
        cv2.fillPoly(frame, [_fixed(pts[_HAIR_CAP])], ident.hair, cv2.LINE_8, SHIFT)
        brow_colour = _shade(ident.hair, 0.8)
        for side in ("left", "right"):
            cv2.fillPoly(frame, [_fixed(pts[_BROWS[side]])], brow_colour, cv2.LINE_AA, SHIFT)
            self._eye(frame, pts, side, unit_px)
        self._nose(frame, pts, unit_px)
        self._mouth(frame, pts, unit_px)
        face_roi = self._roi(pts[_OUTLINE], pad=3)
        if ident.blur and face_roi is not None:
            x0, y0, x1, y1 = face_roi
            cv2.GaussianBlur(frame[y0:y1, x0:x1], (3, 3), 0.6, dst=frame[y0:y1, x0:x1])
        return frame

    @property
    def skin_rgb(self) -> tuple[int, int, int]:
        """The identity's skin colour (for a hand drawn over the face)."""
        return self.ident.skin

    def add_noise(self, frame: RGB, noise_offset: tuple[int, int]) -> None:
        """Sensor noise: a window of the precomputed tile at a per-frame offset, in place (last, after overlays)."""
        if self.noise is not None:
            self.noise.add(frame, noise_offset)

    def _eye(self, frame: RGB, pts: Pts, side: str, unit_px: float) -> None:
        outline = pts[_EYES[side]]
        roi = self._roi(outline, pad=3)
        if roi is None:
            return
        x0, y0, x1, y1 = roi
        off = np.array([x0, y0], np.float64)
        sub = frame[y0:y1, x0:x1]
        mask = np.zeros(sub.shape[:2], np.uint8)
        poly = _fixed(outline - off)
        cv2.fillPoly(mask, [poly], 255, cv2.LINE_8, SHIFT)
        eyeball = np.empty_like(sub)
        eyeball[:] = (235, 232, 226)
        pupil = pts[idx(f"{side}_eye_pupil")] - off
        centre = (round(pupil[0] * ONE), round(pupil[1] * ONE))
        cv2.circle(
            eyeball, centre, round(self.ident.iris * unit_px * ONE), self.ident.iris_colour, -1, cv2.LINE_AA, SHIFT
        )
        cv2.circle(eyeball, centre, round(0.4 * self.ident.iris * unit_px * ONE), (12, 10, 10), -1, cv2.LINE_AA, SHIFT)
        cv2.copyTo(eyeball, mask, sub)
        lash = max(1, round(unit_px * 0.02))
        cv2.polylines(sub, [poly], True, (40, 30, 30), 1, cv2.LINE_8, SHIFT)
        cv2.polylines(sub, [poly[1:4]], False, (25, 20, 20), lash, cv2.LINE_AA, SHIFT)

    def _nose(self, frame: RGB, pts: Pts, unit_px: float) -> None:
        shadow = "left" if np.cos(self.ident.light_angle) > 0 else "right"
        dark = _shade(self.ident.skin, 0.7)
        cv2.polylines(
            frame, [_fixed(pts[_NOSE_SIDE[shadow]])], False, dark, max(1, round(unit_px * 0.015)), cv2.LINE_AA, SHIFT
        )
        axes = (max(1, int(0.055 * unit_px * ONE)), max(1, int(0.028 * unit_px * ONE)))
        for a, b in _NOSTRILS:
            c = 0.5 * (pts[a] + pts[b])
            cv2.ellipse(
                frame, (int(c[0] * ONE), int(c[1] * ONE)), axes, 0.0, 0.0, 360.0, (60, 35, 35), -1, cv2.LINE_AA, SHIFT
            )

    def _mouth(self, frame: RGB, pts: Pts, unit_px: float) -> None:
        cv2.fillPoly(frame, [_fixed(pts[_OUTER_LIP])], self.ident.lips, cv2.LINE_8, SHIFT)
        inner = pts[_INNER_LIP]
        roi = self._roi(inner, pad=2)
        if roi is None:
            return
        x0, y0, x1, y1 = roi
        off = np.array([x0, y0], np.float64)
        sub = frame[y0:y1, x0:x1]
        line_colour = _shade(self.ident.lips, 0.45)
        poly = _fixed(inner - off)
        gap = float(np.max(pts[_LOWER_INNER, 1]) - np.min(pts[_UPPER_INNER, 1]))
        if gap > 2.5:
            mask = np.zeros(sub.shape[:2], np.uint8)
            cv2.fillPoly(mask, [poly], 255, cv2.LINE_8, SHIFT)
            cavity = np.empty_like(sub)
            cavity[:] = (70, 22, 28)
            tooth = 0.09 * unit_px
            upper = pts[_UPPER_INNER] - off
            lower = pts[_LOWER_INNER] - off
            teeth = (238, 236, 225)
            cv2.fillPoly(
                cavity,
                [_fixed(np.concatenate([upper, upper[::-1] + np.array([0.0, tooth])]))],
                teeth,
                cv2.LINE_8,
                SHIFT,
            )
            cv2.fillPoly(
                cavity, [_fixed(np.concatenate([lower, lower[::-1] - (0.0, tooth * 0.8)]))], teeth, cv2.LINE_8, SHIFT
            )
            cv2.copyTo(cavity, mask, sub)
        cv2.polylines(sub, [poly], True, line_colour, 1, cv2.LINE_8, SHIFT)
