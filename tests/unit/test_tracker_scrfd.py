"""SCRFD and 2d106det pre/post-processing: hand-computed boxes, and parity with insightface's own classes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from insightface.app.common import Face
from insightface.model_zoo import model_zoo

from common.errors import ConfigError
from tracker.insightface_landmarker import InsightfaceLandmarker, model_paths
from tracker.landmark106 import Landmark106, graph_normalisation
from tracker.landmarker import FrameInput
from tracker.ort import open_session
from tracker.scrfd import ScrfdDetector
from tracker.settings import TrackerSettings
from tracker.testing.onnx_models import PlacedFace, fixed_scrfd, random_landmark106, write_model_pack

pytestmark = pytest.mark.unit
CPU = ("CPUExecutionProvider",)


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_pack(tmp_path_factory.mktemp("buffalo_l"))


def _images(n: int, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    out = []
    for i in range(n):
        h, w = shapes[i % len(shapes)]
        out.append(cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (0, 0), 2))
    return out


def test_fixed_model_decodes_to_hand_computed_boxes(tmp_path: Path) -> None:
    faces = [
        # stride 16, cell (row 3, col 4) -> centre (64, 48); ltrb (2, 3, 2, 3) x 16 -> canvas box (32, 0, 96, 96)
        PlacedFace(16, 3, 4, 1, 0.9, (2.0, 3.0, 2.0, 3.0), kps=(1.0, -1.0) * 5),
        # stride 8, cell (row 10, col 15) -> centre (120, 80); ltrb (1, 1, 2, 2) x 8 -> (112, 72, 136, 96)
        PlacedFace(8, 10, 15, 0, 0.7, (1.0, 1.0, 2.0, 2.0)),
        # overlaps the first (IoU > 0.4) with a lower score: removed by NMS
        PlacedFace(16, 3, 4, 0, 0.8, (2.0, 3.0, 2.2, 3.0)),
        # below the 0.5 threshold: never reported
        PlacedFace(32, 1, 1, 0, 0.4, (1.0, 1.0, 1.0, 1.0)),
    ]
    session = open_session(fixed_scrfd(tmp_path / "det.onnx", 160, faces), CPU)
    det = ScrfdDetector(session, det_size=160, det_thresh=0.5, nms_thresh=0.4)
    frame = np.zeros((240, 320, 3), np.uint8)  # letterboxed to 160 x 120 on the canvas: frame = canvas / 0.5
    found = det.detect([frame])[0]
    assert [round(d.score, 3) for d in found] == [0.9, 0.7]
    np.testing.assert_allclose(found[0].box, [64, 0, 192, 192])
    np.testing.assert_allclose(found[1].box, [224, 144, 272, 192])
    kps = found[0].kps
    assert kps is not None
    np.testing.assert_allclose(kps, np.tile([[(64 + 16) * 2, (48 - 16) * 2]], (5, 1)))


def test_detector_matches_insightface_scrfd(pack: Path) -> None:
    ref = model_zoo.get_model(str(pack / "det_10g.onnx"), providers=list(CPU))
    ref.prepare(-1, input_size=(320, 320), det_thresh=0.5)
    ours = ScrfdDetector(open_session(pack / "det_10g.onnx", CPU), det_size=320, det_thresh=0.5, nms_thresh=0.4)
    total = 0
    for img in _images(4, [(240, 320), (203, 321), (480, 270), (97, 161)]):
        boxes, kpss = ref.detect(np.ascontiguousarray(img[:, :, ::-1]))
        found = ours.detect([img])[0]
        assert len(found) == boxes.shape[0]
        total += len(found)
        if found:
            np.testing.assert_allclose(np.stack([d.box for d in found]), boxes[:, :4], rtol=0, atol=1e-3)
            np.testing.assert_allclose([d.score for d in found], boxes[:, 4], atol=1e-6)
            np.testing.assert_allclose(np.stack([d.kps for d in found if d.kps is not None]), kpss, atol=1e-3)
    assert total > 0, "the random detector should fire on some of these images"


def test_landmarks_match_insightface_landmark(pack: Path) -> None:
    ref = model_zoo.get_model(str(pack / "2d106det.onnx"), providers=list(CPU))
    ours = Landmark106(open_session(pack / "2d106det.onnx", CPU), pack / "2d106det.onnx")
    assert (ours.mean, ours.std) == (ref.input_mean, ref.input_std) == (0.0, 1.0)
    imgs = _images(3, [(240, 320), (203, 321)])
    boxes = [np.array(b, np.float32) for b in ([50, 40, 150, 170], [-20, 10, 90, 100], [200, 100, 330, 260])]
    got = ours.landmarks(imgs, boxes)
    for img, box, pts in zip(imgs, boxes, got, strict=True):
        face = Face(bbox=box, kps=None, det_score=0.9)
        expected = ref.get(np.ascontiguousarray(img[:, :, ::-1]), face)
        assert pts.shape == (106, 2)
        np.testing.assert_allclose(pts, expected, atol=2e-3)


def test_landmarks_batch_equals_one_by_one(tmp_path: Path) -> None:
    dyn = random_landmark106(tmp_path / "dyn.onnx", seed=3)
    one = random_landmark106(tmp_path / "one.onnx", seed=3, dynamic_batch=False)
    a = Landmark106(open_session(dyn, CPU), dyn)
    b = Landmark106(open_session(one, CPU), one)
    imgs = _images(3, [(120, 160)])
    boxes = [np.array([20, 20, 100, 110], np.float32)] * 3
    for x, y in zip(a.landmarks(imgs, boxes), b.landmarks(imgs, boxes), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-4)


def test_normalisation_read_from_graph(tmp_path: Path, pack: Path) -> None:
    assert graph_normalisation(pack / "2d106det.onnx") == (0.0, 1.0)
    assert graph_normalisation(pack / "det_10g.onnx") == (127.5, 128.0)  # no in-graph Sub/Mul


def test_missing_pack_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        model_paths(tmp_path / "buffalo_l", "det_10g.onnx", "2d106det.onnx")
    text = str(err.value)
    assert str(tmp_path / "buffalo_l" / "det_10g.onnx") in text
    assert "buffalo_l" in text and "FEQA_TRACKER_MODEL_DIR" in text and "never downloads" in text
    assert not (tmp_path / "buffalo_l").exists()  # nothing was created or fetched


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here")
def test_cuda_requested_without_cuda_fails_loudly(pack: Path) -> None:
    settings = TrackerSettings(model_dir=pack, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    with pytest.raises(ConfigError, match="CUDAExecutionProvider"):
        InsightfaceLandmarker.from_settings(settings)


def test_adapter_runs_end_to_end_on_random_models(pack: Path) -> None:
    lm = InsightfaceLandmarker.from_settings(TrackerSettings(model_dir=pack, det_size=320))
    imgs = _images(2, [(240, 320)])
    frames = [FrameInput("s", i, img) for i, img in enumerate(imgs)]
    dets = lm.detect(frames)
    assert len(dets) == 2
    pts = lm.landmarks(frames, [np.array([60, 40, 160, 170], np.float32)] * 2)
    assert all(p.shape == (106, 2) and np.isfinite(p).all() for p in pts)
