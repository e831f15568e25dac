"""The MediaPipe landmarker's parts without the models: anchors, BlazeFace decoding and NMS, rotated ROIs, the
mesh-to-106 table, and the One Euro filter."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from common.errors import ModelError
from phantom.layout import N_POINTS, NAMES, idx
from tracker.mediapipe import roi
from tracker.mediapipe.anchors import generate
from tracker.mediapipe.batch import CropBatch
from tracker.mediapipe.blazeface import BlazeFace, weighted_nms
from tracker.mediapipe.filter import OneEuro
from tracker.mediapipe.table import IRIS_LEFT, IRIS_RIGHT, TABLE_FILE, default_table, parse

pytestmark = pytest.mark.unit

REGIONS = {  # the 106 layout's groups (phantom.layout), each index exactly once
    "contour": range(0, 33), "left_eye": range(33, 43), "left_brow": range(43, 52), "mouth": range(52, 72),
    "nose": range(72, 87), "right_eye": range(87, 97), "right_brow": range(97, 106),
}  # fmt: skip
PREFIX = {"contour": "contour_", "left_eye": "left_eye_", "left_brow": "left_eyebrow_", "mouth": "mouth_",
          "nose": "nose_", "right_eye": "right_eye_", "right_brow": "right_eyebrow_"}  # fmt: skip


def test_anchors_follow_the_ssd_options() -> None:
    a = generate()
    assert a.shape == (896, 4)
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16, 1, 1])  # stride 8: 16x16 cells, 2 anchors each
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(a[511], [15.5 / 16, 15.5 / 16, 1, 1])
    np.testing.assert_allclose(a[512:518], np.tile([0.5 / 8, 0.5 / 8, 1, 1], (6, 1)))  # stride 16: 6 per cell
    np.testing.assert_allclose(a[-1], [7.5 / 8, 7.5 / 8, 1, 1])


class _FixedRunner:
    input_hw = (128, 128)

    def __init__(self, raw: np.ndarray, logits: np.ndarray) -> None:
        self.raw, self.logits = raw, logits

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        n = len(batch)
        return [np.repeat(self.raw[None], n, 0), np.repeat(self.logits[None], n, 0)]


def test_decoding_maps_anchor_offsets_to_frame_pixels_through_the_letterbox() -> None:
    raw = np.zeros((896, 16), np.float32)
    logits = np.full((896, 1), -20.0, np.float32)
    k = 2 * (8 * 16 + 8)  # the stride-8 cell at row 8, column 8: centre (8.5/16, 8.5/16) -> 68 input px
    raw[k, :4] = [2.0, -4.0, 40.0, 30.0]
    raw[k, 4:6] = [-10.0, -6.0]  # keypoint 0 relative to the anchor centre
    logits[k] = 3.0
    raw[k + 1] = raw[k] + 0.5  # a near-duplicate merged by NMS
    logits[k + 1] = 1.0
    det = BlazeFace(_FixedRunner(raw, logits))  # type: ignore[arg-type]
    (faces,) = det.detect([np.zeros((480, 640, 3), np.uint8)])
    assert len(faces) == 1
    f = faces[0]
    scale, pad_y = 128 / 640, (128 - 96) / 2  # 640x480 letterboxed to 128x96, 16 px above and below
    w1, w2 = 1 / (1 + math.exp(-3)), 1 / (1 + math.exp(-1))
    cx = 68 + 2.0 + 0.5 * w2 / (w1 + w2)
    np.testing.assert_allclose((f.box[0] + f.box[2]) / 2, cx / scale, rtol=1e-4)
    np.testing.assert_allclose(f.keypoints[0, 1], (68 - 6.0 + 0.5 * w2 / (w1 + w2) - pad_y) / scale, rtol=1e-4)
    assert f.score == pytest.approx(w1, rel=1e-5)


def test_weighted_nms_keeps_separate_faces_apart() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    out = weighted_nms(boxes, kps, np.array([0.6, 0.9, 0.7], np.float32), 0.3)
    assert [round(s, 2) for _, _, s in out] == [0.9, 0.7]
    np.testing.assert_allclose(out[0][0], (boxes[0] * 0.6 + boxes[1] * 0.9) / 1.5, rtol=1e-5)


def test_roi_maps_round_trip_and_follow_the_eye_line() -> None:
    r = roi.Roi(100.0, 80.0, 60.0, math.radians(30))
    pts = np.array([[0, 0], [191, 0], [95.5, 95.5], [10, 150]], np.float32)
    back = roi.apply(roi.Roi.to_crop(r, 192), roi.apply(r.to_frame(192), pts))
    np.testing.assert_allclose(back, pts, atol=1e-3)
    np.testing.assert_allclose(roi.apply(r.to_frame(192), pts[2:3]), [[100, 80]], atol=1e-4)  # centre to centre
    # a square face rolled 30 degrees: the rotated box is found again, not the larger axis-aligned one
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * 20
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    rolled = (square @ np.array([[c, s], [-s, c]]) + [100, 80]).astype(np.float32)
    found = roi.from_points(rolled, 0, 1, scale=1.0)
    assert found.angle == pytest.approx(math.radians(30), abs=1e-6)
    assert found.size == pytest.approx(40, abs=1e-3) and (found.cx, found.cy) == pytest.approx((100, 80), abs=1e-3)


def test_crop_flip_mirrors_and_maps_back() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    img[40:60, 20:30] = 255  # a bar left of centre
    r = roi.Roi(49.5, 49.5, 64.0, 0.0)
    plain, m = roi.crop(img, r, 64)
    flipped, mf = roi.crop(img, r, 64, flip=True)
    np.testing.assert_array_equal(flipped, plain[:, ::-1])
    np.testing.assert_allclose(roi.apply(mf, np.array([[63 - 10.0, 5.0]])), roi.apply(m, np.array([[10.0, 5.0]])))


def test_the_reused_crop_buffers_give_the_plain_crops() -> None:
    """Crops warped into the reused batch buffers equal :func:`roi.crop` scaled to [0, 1], flipped or not, when
    the batch grows and when a later, smaller batch reuses the buffers."""
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    rois = [roi.Roi(80.0, 60.0, 70.0, 0.3), roi.Roi(30.0, 20.0, 50.0, -0.5), roi.Roi(150.0, 110.0, 40.0, 1.0)]
    batch = CropBatch(32)
    for picks, flips in (([0], [False]), ([0, 1, 2], [True, False, True]), ([2], [False])):
        x, maps = batch.fill([img] * len(picks), [rois[i] for i in picks], flips)
        assert x.shape == (len(picks), 32, 32, 3) and x.dtype == np.uint8
        for k, (i, flip) in enumerate(zip(picks, flips, strict=True)):
            crop, m = roi.crop(img, rois[i], 32, flip=flip)
            np.testing.assert_array_equal(x[k], crop)
            np.testing.assert_allclose(maps[k], m, atol=1e-9)


def test_the_table_has_every_index_once_per_region_and_a_version() -> None:
    table = default_table()
    assert table.identity == "mediapipe-facemesh/t3" and table.version == "t3"
    doc = json.loads(TABLE_FILE.read_text())
    seen = [p["index"] for p in doc["points"]]
    assert seen == list(range(N_POINTS))
    for region, indices in REGIONS.items():
        members = [p for p in doc["points"] if p["index"] in indices]
        assert sorted(p["index"] for p in members) == list(indices), region
        assert all(p["name"] == NAMES[p["index"]] and p["name"].startswith(PREFIX[region]) for p in members)
    np.testing.assert_allclose(table.matrix.sum(axis=1), 1.0, atol=1e-6)
    # pupils and eye centres come from the iris model only; nothing else does
    iris_rows = set(np.flatnonzero(table.matrix[:, IRIS_LEFT])) | set(np.flatnonzero(table.matrix[:, IRIS_RIGHT]))
    assert iris_rows == {34, 38, 88, 92}
    assert all(table.match[i] == "approximate" for i in range(33))  # the jaw contour
    assert table.match[idx("mouth_left_corner")] == table.match[idx("mouth_right_corner")] == "approximate"


def test_the_table_maps_left_and_right_with_mirrored_rules() -> None:
    table = default_table()
    for i, name in enumerate(NAMES):
        if "left" not in name:
            continue
        twin = name.replace("left", "\0").replace("right", "left").replace("\0", "right")
        assert table.match[i] == table.match[idx(twin)], name
        assert np.count_nonzero(table.matrix[i]) == np.count_nonzero(table.matrix[idx(twin)]), name


def test_a_broken_table_is_refused_with_the_reason() -> None:
    doc = json.loads(TABLE_FILE.read_text())
    doc["points"][5]["weights"] = [0.5] * len(doc["points"][5]["vertices"]) + []
    doc["points"][5]["weights"][0] += 0.3
    with pytest.raises(ModelError, match="point 5 weights"):
        parse(doc)
    doc = json.loads(TABLE_FILE.read_text())
    doc["points"][7], doc["points"][8] = doc["points"][8], doc["points"][7]
    with pytest.raises(ModelError, match="point 7 must be"):
        parse(doc)
    doc = json.loads(TABLE_FILE.read_text())
    doc["points"][3]["vertices"][0] = 470
    with pytest.raises(ModelError, match="point 3 has a vertex outside"):
        parse(doc)
    with pytest.raises(ModelError, match="no version"):
        parse({**doc, "version": ""})


def test_one_euro_smooths_rest_and_follows_motion() -> None:
    rng = np.random.default_rng(0)
    fps, iod = 30.0, 50.0
    noise = rng.normal(0, 0.4, (300, 4, 2)).astype(np.float32)
    still = np.full((300, 4, 2), 100.0, np.float32) + noise
    f = OneEuro(min_cutoff=2.0, beta=5.0)
    out = np.stack([f(p, i / fps, iod) for i, p in enumerate(still)])
    raw_jitter = np.abs(np.diff(still[50:], axis=0)).mean()
    assert np.abs(np.diff(out[50:], axis=0)).mean() < raw_jitter / 2
    # a steady glide of 1 IOD per second: the filter trails by little
    t = np.arange(120) / fps
    moving = (100 + iod * t)[:, None, None] * np.ones((1, 4, 2), np.float32)
    f.reset()
    out = np.stack([f(p.astype(np.float32), ti, iod) for p, ti in zip(moving, t, strict=True)])
    lag_frames = float(np.mean(moving[60:] - out[60:])) / (iod / fps)
    assert 0 < lag_frames < 2.0
    # a repeated timestamp changes nothing; a long gap starts over
    assert np.array_equal(f(moving[-1] + 9, t[-1], iod), out[-1])
    np.testing.assert_array_equal(f(moving[0], t[-1] + 5.0, iod), moving[0])


def test_the_table_from_a_mesh_reads_only_its_sources_and_equals_the_full_product() -> None:
    table = default_table()
    rng = np.random.default_rng(11)
    vertices = rng.uniform(0, 640, (468, 3)).astype(np.float32)
    centres = rng.uniform(0, 640, (2, 2)).astype(np.float32)
    full = table.apply(np.concatenate([vertices[:, :2], centres]))
    np.testing.assert_allclose(table.from_mesh(vertices, centres), full, atol=1e-3)
    unused = np.flatnonzero(np.abs(table.matrix[:, :468]).sum(axis=0) == 0)
    vertices[unused] = np.nan  # a vertex no point reads cannot reach the result
    assert np.isfinite(table.from_mesh(vertices, centres)).all()
    moved = centres.copy()
    moved[1] += 10.0  # the image-right iris centre moves exactly the points built on it
    shift = table.from_mesh(vertices, moved) - table.from_mesh(vertices, centres)
    np.testing.assert_allclose(shift[:, 0], 10.0 * table.matrix[:, IRIS_RIGHT], atol=1e-3)
