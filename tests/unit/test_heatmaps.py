"""Landmark heatmaps (common.heatmaps) against hand-computed cases and against OpenCV, which the reference used."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from common.features import FeatureError
from common.heatmaps import (
    HEATMAP_VERSION,
    HeatmapSpec,
    accumulate,
    heatmap_frame,
    heatmap_frames,
    jet_lut,
    model_heatmaps,
    smooth,
)

pytestmark = pytest.mark.unit

SMALL = HeatmapSpec(canvas=64, size=16, crop=12)


def test_one_landmark_is_the_sampled_gaussian_inside_its_window() -> None:
    acc = accumulate([[20.0, 30.0]], SMALL)  # x = 20, y = 30
    assert acc.shape == (64, 64) and acc[30, 20] == 1.0
    assert acc[30, 21] == pytest.approx(math.exp(-0.5))
    assert acc[31, 21] == pytest.approx(math.exp(-1.0))
    assert acc[30, 25] == pytest.approx(math.exp(-12.5))  # edge of the 11 x 11 window
    assert acc[30, 26] == 0.0 and acc[36, 20] == 0.0  # just outside it
    assert np.count_nonzero(acc) == 121


def test_overlaps_add_windows_clip_and_far_points_vanish() -> None:
    both = accumulate([[20.0, 30.0], [22.0, 30.0]], SMALL)
    assert both[30, 21] == pytest.approx(2 * math.exp(-0.5))
    corner = accumulate([[2.0, 3.0]], SMALL)  # window x 0..7, y 0..8 (clipped at 0)
    assert corner[3, 2] == 1.0 and np.count_nonzero(corner) == 8 * 9
    assert not accumulate([[-30.0, -30.0], [200.0, 10.0]], SMALL).any()
    half = accumulate([[10.5, 10.0]], SMALL)  # fractional: peak (two pixels at 0.5 px) scaled to 1
    assert half[10, 10] == pytest.approx(1.0) and half[10, 11] == pytest.approx(1.0)


def test_smoothing_is_opencvs_default_7x7_gaussian() -> None:
    delta = np.zeros((32, 32), np.float32)
    delta[16, 16] = 1.0
    out = smooth(delta)
    assert out[16, 16] == pytest.approx((9 / 32) ** 2)
    assert out[16, 19] == pytest.approx(9 / 32 * 1 / 32)
    assert out.sum() == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    img = rng.random((40, 48)).astype(np.float32)
    np.testing.assert_allclose(smooth(img), cv2.GaussianBlur(img, (7, 7), 0), atol=1e-6)


def test_jet_table_matches_opencv() -> None:
    cv = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, ::-1]  # BGR -> RGB
    diff = np.abs(jet_lut().astype(int) - cv.astype(int))
    assert diff.max() <= 1 and (diff > 0).sum() <= 1


def _only(index_73: int, x: float, y: float) -> np.ndarray:
    """106 landmarks with every heatmap point far off the canvas except one."""
    lm = np.full((106, 2), -1000.0)
    lm[33 + index_73] = (x, y)
    return lm


def test_rgb_frame_by_hand_for_one_landmark() -> None:
    """One visible landmark and a flat colour: every step is separable, so the expected image is the outer product of
    one 1-D profile (window, smoothed, block-averaged), divided by the squared peak, times the colour."""
    spec = SMALL
    colour = np.array([200, 100, 50], np.uint8)
    crop = np.broadcast_to(colour, (64, 64, 3)).copy()
    x, y = 29, 21
    img = heatmap_frame(_only(5, x, y), crop, spec)

    def profile(c: int) -> np.ndarray:
        g = np.zeros(64)
        g[c - 5 : c + 6] = np.exp(-((np.arange(c - 5, c + 6) - c) ** 2) / 2.0)
        taps = np.array([1, 3.5, 7, 9, 7, 3.5, 1]) / 32
        return np.convolve(g, taps, mode="same")  # far from the border: no reflection involved

    px, py = profile(x), profile(y)
    weights = np.outer(py, px) / (py.max() * px.max())
    blocks = weights.reshape(16, 4, 16, 4).mean(axis=(1, 3))
    want = np.rint(blocks[:, :, None] * colour.astype(float))
    assert img.dtype == np.uint8 and img.shape == (16, 16, 3)
    assert np.abs(img.astype(float) - want).max() <= 1.0
    assert img.max() > 100  # the peak block keeps most of the colour


def _script_jet(lm73: np.ndarray) -> np.ndarray:
    """The shipped script's steps with OpenCV (landmark 0 skipped, per-landmark peak 1, sum, blur, max, JET), then
    OpenCV's area resize to 64: what its heatmap images look like when the reference loader downsizes them."""
    maps = []
    for mx, my in lm73[1:]:
        m = np.zeros((256, 256), np.float32)
        x0, x1 = max(int(mx - 5), 0), min(int(mx + 5) + 1, 256)
        y0, y1 = max(int(my - 5), 0), min(int(my + 5) + 1, 256)
        xs, ys = np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32)[:, None]
        m[y0:y1, x0:x1] = np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / 2)
        maps.append(m / m.max())
    blurred = cv2.GaussianBlur(np.sum(maps, axis=0), (7, 7), sigmaX=0)
    blurred /= blurred.max()
    bgr = cv2.applyColorMap(np.uint8(255 * blurred), cv2.COLORMAP_JET)
    return cv2.resize(bgr[:, :, ::-1], (64, 64), interpolation=cv2.INTER_AREA)


def test_jet_variant_reproduces_the_shipped_script() -> None:
    rng = np.random.default_rng(3)
    lm = np.zeros((106, 2))
    lm[33:] = rng.integers(40, 216, size=(73, 2))
    spec = HeatmapSpec(variant="jet", skip_first=True)
    ours = heatmap_frame(lm, None, spec).astype(int)
    script = _script_jet(lm[33:].astype(np.float32)).astype(int)
    assert np.abs(ours - script).max() <= 2
    assert (ours[0, 0] == [0, 0, 128]).all()  # weight 0 is JET's dark blue, not black


def test_windows_and_model_input() -> None:
    rng = np.random.default_rng(1)
    lm = np.zeros((3, 106, 2))
    lm[:, 33:] = rng.integers(60, 200, size=(3, 73, 2))
    crops = rng.integers(0, 256, size=(3, 256, 256, 3), dtype=np.uint8)
    imgs = heatmap_frames(lm, crops, HeatmapSpec())
    assert imgs.shape == (3, 64, 64, 3)
    x = model_heatmaps(imgs, HeatmapSpec())
    assert x.shape == (3, 3, 56, 56) and x.dtype == np.float32
    np.testing.assert_array_equal(x[1, 2], imgs[1, 4:60, 4:60, 2] / np.float32(255.0))
    shifted = model_heatmaps(imgs, HeatmapSpec(), offset=(0, 8))
    np.testing.assert_array_equal(shifted[0, 0], imgs[0, 0:56, 8:64, 0] / np.float32(255.0))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: heatmap_frame(np.full((106, 2), np.nan), None, HeatmapSpec(variant="jet")), "not finite"),
        (lambda: heatmap_frame(np.zeros((73, 2)), None, HeatmapSpec(variant="jet")), r"\[106, 2\]"),
        (lambda: heatmap_frame(np.zeros((106, 2)), None, HeatmapSpec()), "needs the frame's crop"),
        (lambda: heatmap_frame(np.zeros((106, 2)), np.zeros((256, 256, 3)), HeatmapSpec()), "uint8"),
        (lambda: heatmap_frames(np.zeros((0, 106, 2)), None, HeatmapSpec(variant="jet")), "T > 0"),
        (lambda: heatmap_frames(np.zeros((2, 106, 2)), np.zeros((3, 256, 256, 3), np.uint8), HeatmapSpec()), "crops"),
        (lambda: HeatmapSpec(variant="gray").validate(), "variant"),
        (lambda: HeatmapSpec(kernel=10).validate(), "odd"),
        (lambda: HeatmapSpec(size=60).validate(), "multiple"),
        (lambda: HeatmapSpec(version=HEATMAP_VERSION + 1).validate(), "version"),
        (lambda: HeatmapSpec.from_dict({"variant": "rgb", "colour": 1}), "unknown"),
        (lambda: model_heatmaps(np.zeros((2, 64, 64, 3), np.uint8), HeatmapSpec(), offset=(9, 0)), "outside"),
        (lambda: model_heatmaps(np.zeros((2, 32, 32, 3), np.uint8), HeatmapSpec()), "heatmap images"),
    ],
)
def test_bad_input_is_a_clear_error(call: object, message: str) -> None:
    with pytest.raises(FeatureError, match=message):
        call()  # type: ignore[operator]


def test_spec_round_trips() -> None:
    spec = HeatmapSpec(variant="jet", skip_first=True, size=32, crop=28)
    assert HeatmapSpec.from_dict(spec.to_dict()) == spec
    assert len(spec.points) == 72 and spec.points[0] == 34 and len(HeatmapSpec().points) == 73
