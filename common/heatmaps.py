"""QAFE-Net's landmark heatmap volumes (models.md §2.1-§2.2), from observations: one code path for training and live.

Pure numpy. The trainer builds them from dataset landmarks and 256 crops; the scorer from ``obs:{sid}`` landmarks
(106 points, pixels of the 256 reference crop) and ``crops:{sid}``. Both call :func:`heatmap_frames`, which stores
one ``uint8`` image of ``size`` x ``size`` x 3 per frame, and :func:`model_heatmaps`, which turns a window of them
into the model input [T, 3, crop, crop] float32 in [0, 1] (no mean/std normalisation, as in the reference).

Per frame, on the ``canvas`` x ``canvas`` crop (256), for the 73 non-contour landmarks (106-indices 33-105):

1. Every landmark adds a Gaussian of ``sigma`` (1 px) over a ``kernel`` x ``kernel`` (11 x 11) window around it, the
   window clipped to the canvas, each landmark's map scaled to peak 1; overlaps add. At the integer landmark
   positions the tracker produces this is exactly the paper's fixed 11 x 11 kernel accumulated into a zero frame.
   The window starts at ``trunc(mu - r)``, as the shipped script has it; a landmark whose window misses the canvas
   entirely adds nothing (the script would divide by zero there).
2. Smoothing: OpenCV's 7-tap Gaussian (``cv2.GaussianBlur(.., (7, 7), 0)`` uses the fixed binomial-like taps
   [1, 3.5, 7, 9, 7, 3.5, 1] / 32), separably, borders reflected without repeating the edge pixel.
3. Divided by its maximum, to [0, 1].
4. ``variant``:

   * ``"rgb"`` (the paper): the weights multiply the crop's RGB values.
   * ``"jet"`` (the shipped script): ``uint8(255 * w)`` through the JET colour map (dark blue where the weight is
     0; no RGB), and landmark 0 of the 73 is skipped as the script's loop does (``skip_first``).

5. Area-averaged down to ``size`` (64; the reference loader resizes its 256 heatmap images to 64) and rounded to
   ``uint8``.

The model sees a ``crop`` x ``crop`` (56) window of those: centred for scoring (:func:`model_heatmaps`), at random
in training (the trainer draws it). :data:`HEATMAP_VERSION` changes whenever any of these rules does; the scorer
refuses a model whose manifest names another version.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from common.features import POINTS_73_106, FeatureError

HEATMAP_VERSION = 1
VARIANTS = ("rgb", "jet")

# OpenCV's Gaussian for a 7-pixel kernel when sigma is not given: fixed taps (not computed from a sigma).
_BLUR7 = np.array([1.0, 3.5, 7.0, 9.0, 7.0, 3.5, 1.0], dtype=np.float32) / 32.0

UInt8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]


@dataclasses.dataclass(frozen=True)
class HeatmapSpec:
    """How heatmaps are drawn; travels in the model config and the manifest (the scorer draws them the same way)."""

    variant: str = "rgb"  # rgb (paper: weights x RGB) | jet (shipped script: JET colour map)
    sigma: float = 1.0
    kernel: int = 11  # side of each landmark's Gaussian window (odd)
    blur: int = 7  # smoothing kernel side; only OpenCV's fixed 7-tap kernel is implemented
    canvas: int = 256  # side of the crop the landmarks are in
    size: int = 64  # side of the stored heatmap images
    crop: int = 56  # side the model sees
    skip_first: bool = False  # leave out landmark 0 of the 73 (106-index 33), as the shipped script does
    version: int = HEATMAP_VERSION

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise FeatureError(f"heatmap variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.kernel % 2 == 0 or self.kernel < 1 or not self.sigma > 0:
            raise FeatureError(f"heatmap kernel must be odd and sigma positive, got {self.kernel}, {self.sigma}")
        if self.blur != 7:
            raise FeatureError(f"only the 7-pixel smoothing kernel is implemented, got {self.blur}")
        if self.canvas % self.size or not 0 < self.crop <= self.size:
            raise FeatureError(
                f"canvas {self.canvas} must be a multiple of size {self.size}, and 0 < crop {self.crop} <= size"
            )
        if self.version != HEATMAP_VERSION:
            raise FeatureError(f"heatmap rules version {self.version} unknown; this code draws {HEATMAP_VERSION}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> HeatmapSpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - fields
        if unknown:
            raise FeatureError(f"unknown heatmap spec fields {sorted(unknown)}")
        spec = cls(**raw)
        spec.validate()
        return spec

    @property
    def points(self) -> tuple[int, ...]:
        """The 106-indices drawn, in order."""
        return POINTS_73_106[1:] if self.skip_first else POINTS_73_106


def with_sigma(spec: HeatmapSpec, sigma: float) -> HeatmapSpec:
    """``spec`` with another Gaussian ``sigma`` (crop pixels) and the window that keeps the paper's proportion
    (11 x 11 at sigma 1: +-5 sigma, odd)."""
    out = dataclasses.replace(spec, sigma=float(sigma), kernel=2 * round(5 * sigma) + 1)
    out.validate()
    return out


def jet_lut() -> UInt8Array:
    """The JET colour map as a [256, 3] RGB table: blue from 128 up to 255 and down, then green, then red, each a
    ramp of 4 levels per step (matches ``cv2.COLORMAP_JET`` to within one level)."""
    i = np.arange(256, dtype=np.int64)
    red = np.minimum(4 * i - 382, 1148 - 4 * i)
    green = np.minimum(4 * i - 128, 892 - 4 * i)
    blue = np.minimum(4 * i + 128, 638 - 4 * i)
    lut: UInt8Array = np.clip(np.stack([red, green, blue], axis=1), 0, 255).astype(np.uint8)
    return lut


_JET_F = jet_lut().astype(np.float32)


def _kernel(sigma: float, kernel: int) -> npt.NDArray[np.float64]:
    r = kernel // 2
    d2 = np.arange(-r, r + 1, dtype=np.float64) ** 2
    out: npt.NDArray[np.float64] = np.exp(-(d2[:, None] + d2[None, :]) / (2.0 * sigma**2))
    return out


def accumulate(points: npt.ArrayLike, spec: HeatmapSpec) -> FloatArray:
    """Step 1: the sum of each point's Gaussian window (peak 1 each) on the canvas -> [canvas, canvas] float32.

    ``points`` is [P, 2] (x, y) in canvas pixels."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise FeatureError(f"points must be [P, 2], got {list(pts.shape)}")
    if not np.isfinite(pts).all():
        raise FeatureError("landmarks are not finite (fill frames without a face first)")
    side, r = spec.canvas, spec.kernel // 2
    out = np.zeros((side, side), dtype=np.float64)
    whole = _kernel(spec.sigma, spec.kernel)  # the window of an integer position, centre at [r, r]
    for mx, my in pts:
        x0, x1 = max(int(np.trunc(mx - r)), 0), min(int(np.trunc(mx + r)) + 1, side)
        y0, y1 = max(int(np.trunc(my - r)), 0), min(int(np.trunc(my + r)) + 1, side)
        if x0 >= x1 or y0 >= y1:
            continue  # the window misses the canvas
        if mx == int(mx) and my == int(my):  # the common case (integer landmarks): a slice of the fixed kernel
            cx, cy = int(mx), int(my)
            patch = whole[y0 - cy + r : y1 - cy + r, x0 - cx + r : x1 - cx + r]
        else:
            dx = (np.arange(x0, x1) - mx) ** 2
            dy = (np.arange(y0, y1) - my) ** 2
            patch = np.exp(-(dy[:, None] + dx[None, :]) / (2.0 * spec.sigma**2))
        out[y0:y1, x0:x1] += patch / patch.max()
    return out.astype(np.float32)


def _blur_axis(a: FloatArray, axis: int) -> FloatArray:
    pad = [(0, 0), (0, 0)]
    pad[axis] = (3, 3)
    p = np.pad(a, pad, mode="reflect")  # reflect without repeating the edge = OpenCV's default border
    n = a.shape[axis]
    out = np.zeros_like(a)
    for k, w in enumerate(_BLUR7):
        out += w * (p[k : k + n] if axis == 0 else p[:, k : k + n])
    return out


def smooth(weights: FloatArray) -> FloatArray:
    """Step 2: OpenCV's 7 x 7 Gaussian blur with its default sigma and border."""
    return _blur_axis(_blur_axis(np.asarray(weights, dtype=np.float32), 0), 1)


def _area_downsample(img: FloatArray, size: int) -> FloatArray:
    """Mean over f x f blocks (f = side / size) of an [S, S, C] image, as strided sums (faster than a reshape-mean)."""
    f = img.shape[0] // size
    rows = img[0::f].copy()
    for k in range(1, f):
        rows += img[k::f]
    out = rows[:, 0::f].copy()
    for k in range(1, f):
        out += rows[:, k::f]
    result: FloatArray = out * np.float32(1.0 / (f * f))
    return result


def heatmap_frame(landmarks_106: npt.ArrayLike, crop: npt.ArrayLike | None, spec: HeatmapSpec) -> UInt8Array:
    """One frame's heatmap image [size, size, 3] uint8 from its 106 landmarks (canvas pixels) and, for the "rgb"
    variant, its [canvas, canvas, 3] uint8 RGB crop."""
    lm = np.asarray(landmarks_106, dtype=np.float64)
    if lm.shape != (106, 2):
        raise FeatureError(f"landmarks must be [106, 2], got {list(lm.shape)}")
    w = smooth(accumulate(lm[list(spec.points)], spec))
    peak = float(w.max())
    w = w / peak if peak > 0 else w
    if spec.variant == "jet":
        level = np.clip(np.float32(255.0) * w, 0, 255).astype(np.uint8)  # uint8() truncates, as the script does
        img = np.take(_JET_F, level, axis=0)
    else:
        if crop is None:
            raise FeatureError("the rgb heatmap variant needs the frame's crop")
        rgb = np.asarray(crop)
        if rgb.shape != (spec.canvas, spec.canvas, 3) or rgb.dtype != np.uint8:
            want = f"uint8 [{spec.canvas}, {spec.canvas}, 3]"
            raise FeatureError(f"crop must be {want}, got {rgb.dtype} {list(rgb.shape)}")
        img = np.multiply(w[:, :, None], rgb, dtype=np.float32)
    return np.clip(np.rint(_area_downsample(img, spec.size)), 0, 255).astype(np.uint8)


def heatmap_frames(landmarks_106: npt.ArrayLike, crops: npt.ArrayLike | None, spec: HeatmapSpec) -> UInt8Array:
    """[T, 106, 2] landmarks (+ [T, canvas, canvas, 3] crops) -> [T, size, size, 3] uint8 heatmap images."""
    spec.validate()
    lm = np.asarray(landmarks_106)
    if lm.ndim != 3 or lm.shape[1:] != (106, 2) or lm.shape[0] == 0:
        raise FeatureError(f"landmarks must be [T, 106, 2] with T > 0, got {list(lm.shape)}")
    frames = None if crops is None else np.asarray(crops)
    if frames is not None and frames.shape[0] != lm.shape[0]:
        raise FeatureError(f"{lm.shape[0]} landmark frames but {frames.shape[0]} crops")
    out = np.empty((lm.shape[0], spec.size, spec.size, 3), dtype=np.uint8)
    for t in range(lm.shape[0]):
        out[t] = heatmap_frame(lm[t], None if frames is None else frames[t], spec)
    return out


def model_heatmaps(images: npt.ArrayLike, spec: HeatmapSpec, offset: tuple[int, int] | None = None) -> FloatArray:
    """[T, size, size, 3] uint8 heatmap images -> the model input [T, 3, crop, crop] float32 in [0, 1].

    ``offset`` (y, x) places the crop window; the default is the centre (scoring). Training draws it at random."""
    img = np.asarray(images)
    if img.ndim != 4 or img.shape[1:] != (spec.size, spec.size, 3):
        raise FeatureError(f"heatmap images must be [T, {spec.size}, {spec.size}, 3], got {list(img.shape)}")
    if offset is None:
        offset = ((spec.size - spec.crop) // 2, (spec.size - spec.crop) // 2)
    y, x = offset
    if not (0 <= y <= spec.size - spec.crop and 0 <= x <= spec.size - spec.crop):
        raise FeatureError(f"crop offset {offset} outside the {spec.size}-pixel image")
    window = img[:, y : y + spec.crop, x : x + spec.crop]
    return np.ascontiguousarray(window.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
