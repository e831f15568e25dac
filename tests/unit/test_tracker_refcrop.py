"""The reference crop-to-256 (models.md §5) by hand, and exact crop <-> frame coordinate maps."""

from __future__ import annotations

import numpy as np
import pytest

from common.crop import REF_SIZE, colours_at, crop_landmarks, cut_box, reference_crop
from tracker.refcrop import crop_to_frame, frame_to_crop, rgb_crop

pytestmark = pytest.mark.unit


def test_cut_box_rounds_and_clamps_like_the_reference() -> None:
    np.testing.assert_array_equal(cut_box(np.array([10.4, 20.6, 110.6, 70.2]), 640, 480), [10, 21, 111, 70])
    # negative x1, y1 clamp to 0; x2, y2 past the edge are cut as slicing does
    np.testing.assert_array_equal(cut_box(np.array([-5.2, -0.7, 700.0, 500.0]), 640, 480), [0, 0, 640, 480])
    assert cut_box(np.array([650.0, 10.0, 700.0, 50.0]), 640, 480) is None


def test_crop_landmarks_by_hand() -> None:
    box = np.array([10, 20, 110, 70], np.int32)  # 100 x 50
    pts = np.array([[10.2, 20.4], [60.6, 44.5], [109.7, 69.9], [5.0, 80.0]], np.float32)
    # round in frame px -> (10,20) (61,44) (110,70) (5,80); minus (10,20) -> (0,0) (51,24) (100,50) (-5,60)
    # clamp to [0,99]x[0,49] -> (0,0) (51,24) (99,49) (0,49); x*2.56, y*5.12 -> round
    expected = [[0, 0], [131, 123], [253, 251], [0, 251]]
    np.testing.assert_array_equal(crop_landmarks(pts, box), expected)


def test_reference_crop_image_is_the_box_resized() -> None:
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[30:90, 40:100] = (200, 100, 50)  # the box exactly
    ref = reference_crop(frame, np.array([40.0, 30.0, 100.0, 90.0]), np.full((106, 2), 70.0, np.float32))
    assert ref is not None
    assert ref.image.shape == (REF_SIZE, REF_SIZE, 3)
    assert (ref.image == (200, 100, 50)).all()
    np.testing.assert_array_equal(ref.landmarks[0], [128, 171])  # (70-40)*256/60, (70-30)*256/60 rounded
    np.testing.assert_array_equal(colours_at(ref)[0], [200, 100, 50])


@pytest.mark.parametrize("size", [224, 256, 112])
def test_rgb_crop_maps_back_to_frame_exactly(size: int) -> None:
    rng = np.random.default_rng(0)
    frame = np.zeros((240, 320, 3), np.uint8)
    box = np.array([61.3, 42.8, 203.6, 219.4], np.float32)
    cut = cut_box(box, 320, 240)
    assert cut is not None
    pts = rng.uniform([70, 50], [195, 210], (106, 2)).astype(np.float32)
    crop_pts = frame_to_crop(pts, cut, size)
    np.testing.assert_allclose(crop_to_frame(crop_pts, cut, size), pts, atol=1e-9)
    # a bright square in the frame lands where the map says in the crop
    frame[100:120, 150:170] = 255
    ref = reference_crop(frame, box, pts)
    assert ref is not None
    img = rgb_crop(ref, size)
    ys, xs = np.nonzero(img[:, :, 0] > 128)
    centre = crop_to_frame(np.array([[xs.mean() + 0.5, ys.mean() + 0.5]]), cut, size)[0]
    np.testing.assert_allclose(centre, [160, 110], atol=1.0)


def test_landmarks_crop_map_back_within_the_reference_rounding() -> None:
    rng = np.random.default_rng(1)
    box = np.array([61.3, 42.8, 203.6, 219.4], np.float32)
    cut = cut_box(box, 320, 240)
    assert cut is not None
    pts = rng.uniform([70, 50], [195, 210], (106, 2)).astype(np.float32)
    back = crop_to_frame(crop_landmarks(pts, cut), cut, REF_SIZE)
    # two roundings: 0.5 px in the frame, then 0.5 crop px = 0.5 * w / 256 frame px
    w, h = cut[2] - cut[0], cut[3] - cut[1]
    err = np.abs(back - pts)
    assert (err[:, 0] <= 0.5 + 0.5 * w / 256 + 1e-6).all()
    assert (err[:, 1] <= 0.5 + 0.5 * h / 256 + 1e-6).all()
