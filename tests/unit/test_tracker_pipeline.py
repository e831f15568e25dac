"""The frame pipeline: detector cadence, landmark-box tracking and recovery, face choice, every bad input."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from common.framecodec import encode_frame
from common.messages import Frame
from tracker.geometry import box_iou
from tracker.landmarker import Detection, FrameInput, Points
from tracker.pipeline import FrameJob, FramePipeline
from tracker.settings import TrackerSettings
from tracker.testing.blob_landmarker import BlobLandmarker

pytestmark = pytest.mark.unit
W, H = 320, 240


def _frame(seq: int, rects: Sequence[tuple[int, int, int, int]], sid: str = "s1", w: int = W, h: int = H) -> Frame:
    rgb = np.zeros((h, w, 3), np.uint8)
    for x1, y1, x2, y2 in rects:
        rgb[y1:y2, x1:x2] = 200
    return Frame(sid=sid, seq=seq, capture_ts=seq / 30, width=w, height=h, encoding="rgb24",
                 data=encode_frame(rgb, "rgb24"))  # fmt: skip


def _pipeline(**kw: object) -> FramePipeline:
    return FramePipeline(TrackerSettings(**kw))  # type: ignore[arg-type]


def test_detector_runs_every_n_frames_while_tracking_holds() -> None:
    lm = BlobLandmarker()
    pipe = _pipeline(detect_every=5)
    results = [pipe.process([FrameJob(_frame(i, [(100, 60, 180, 160)]), lm)])[0] for i in range(20)]
    assert all(r.obs.face and r.obs.reason == "" for r in results)
    assert lm.detected_frames == 4  # frames 0, 5, 10, 15
    assert [r.obs.quality["tracked"] for r in results[:6]] == [0, 1, 1, 1, 1, 0]
    for r in results:  # tracked boxes keep the detector's framing
        assert r.obs.box is not None
        assert box_iou(r.obs.box, np.array([100, 60, 180, 160], np.float32)) > 0.95
        assert r.crop is not None and r.crop.image.shape == (224, 224, 3)


def test_tracking_recovers_when_the_face_jumps() -> None:
    lm = BlobLandmarker()
    pipe = _pipeline(detect_every=5)
    old, new = (40, 40, 100, 120), (220, 100, 290, 190)
    out = [pipe.process([FrameJob(_frame(i, [old if i < 7 else new]), lm)])[0] for i in range(16)]
    # frame 7 jumps; the stale box sees nothing until the next scheduled detection (frame 10) at the latest
    first_ok = next(i for i, r in enumerate(out) if r.obs.box is not None and box_iou(r.obs.box, np.array(new)) > 0.9)
    assert 7 <= first_ok <= 10
    assert all(box_iou(r.obs.box, np.array(new, np.float32)) > 0.9 for r in out[first_ok:] if r.obs.box is not None)


def test_a_partial_move_is_detected_again_at_once() -> None:
    lm = BlobLandmarker()
    pipe = _pipeline(detect_every=30, drift_iou=0.5)
    pipe.process([FrameJob(_frame(0, [(100, 60, 180, 160)]), lm)])
    before = lm.detected_frames
    r = pipe.process([FrameJob(_frame(1, [(150, 60, 230, 160)]), lm)])[0]  # moved by 60 % of its width
    assert lm.detected_frames == before + 1
    assert r.obs.quality["tracked"] == 0.0
    assert r.obs.box is not None and box_iou(r.obs.box, np.array([150, 60, 230, 160], np.float32)) > 0.95


def test_largest_central_face_is_chosen_and_kept_by_iou() -> None:
    lm = BlobLandmarker()
    pipe = _pipeline(detect_every=1)
    patient, other = (130, 70, 200, 160), (10, 10, 50, 60)
    r = pipe.process([FrameJob(_frame(0, [patient, other]), lm)])[0]
    assert r.obs.face and r.obs.reason == "several_faces" and r.obs.quality["faces"] == 2
    assert r.obs.box is not None and box_iou(r.obs.box, np.array(patient, np.float32)) > 0.95
    # a bigger face walks in at the side: the patient's face is kept because it overlaps the last box
    big = (220, 20, 315, 180)
    r = pipe.process([FrameJob(_frame(1, [patient, big]), lm)])[0]
    assert r.obs.box is not None and box_iou(r.obs.box, np.array(patient, np.float32)) > 0.95


def test_no_face_and_tiny_face() -> None:
    lm = BlobLandmarker()
    pipe = _pipeline(min_face_px=32)
    r0, r1 = pipe.process([FrameJob(_frame(0, []), lm), FrameJob(_frame(0, [(10, 10, 30, 28)], sid="s2"), lm)])
    assert (r0.obs.face, r0.obs.reason, r0.crop) == (False, "no_face", None)
    assert (r1.obs.face, r1.obs.reason) == (False, "tiny_face")
    assert r1.obs.box is not None  # the tiny face's box is still reported


def test_corrupt_odd_and_oversized_frames_become_reasons() -> None:
    lm = BlobLandmarker()
    pipe = _pipeline(max_frame_pixels=1000 * 1000)
    good = _frame(0, [(100, 60, 180, 160)])
    jobs = [
        FrameJob(Frame(sid="a", seq=1, capture_ts=0, width=W, height=H, encoding="rgb24", data=b"\x00" * 17), lm),
        FrameJob(Frame(sid="b", seq=1, capture_ts=0, width=W, height=H, encoding="jpeg", data=b"not a jpeg"), lm),
        FrameJob(Frame(sid="c", seq=1, capture_ts=0, width=0, height=H, encoding="rgb24", data=b""), lm),
        FrameJob(Frame(sid="d", seq=1, capture_ts=0, width=W, height=H, encoding="weird", data=good.data), lm),
        FrameJob(Frame(sid="e", seq=1, capture_ts=0, width=2000, height=1000, encoding="rgb24", data=b""), lm),
        FrameJob(_frame(1, [(5, 5, 150, 90)], sid="f", w=161, h=97), lm),  # odd size, face at the edge
        FrameJob(_frame(1, [(0, 0, 1, 1)], sid="g", w=1, h=1), lm),
        FrameJob(good, None, "not_phantom"),
    ]
    out = pipe.process(jobs)
    assert [r.obs.reason for r in out[:5]] == ["corrupt_frame"] * 4 + ["frame_too_large"]
    assert out[5].obs.face and out[5].obs.frame_w == 161
    assert out[6].obs.reason in ("no_face", "tiny_face")
    assert (out[7].obs.face, out[7].obs.reason) == (False, "not_phantom")
    assert [r.obs.seq for r in out] == [j.frame.seq for j in jobs]


class _Broken(BlobLandmarker):
    def landmarks(self, frames: Sequence[FrameInput], boxes: Sequence[Points]) -> list[Points]:
        raise RuntimeError("device lost")


class _NaN(BlobLandmarker):
    def landmarks(self, frames: Sequence[FrameInput], boxes: Sequence[Points]) -> list[Points]:
        return [np.full((106, 2), np.nan, np.float32) for _ in frames]


def test_landmarker_failures_do_not_escape() -> None:
    pipe = _pipeline()
    frame = _frame(0, [(100, 60, 180, 160)])
    assert pipe.process([FrameJob(frame, _Broken())])[0].obs.reason == "landmarker_error"
    assert pipe.process([FrameJob(frame, _NaN())])[0].obs.reason == "landmark_failure"


def test_sessions_are_batched_into_one_call_per_round() -> None:
    lm = BlobLandmarker()
    pipe = _pipeline(detect_every=1)
    jobs = [FrameJob(_frame(i, [(100, 60, 180, 160)], sid=f"s{k}"), lm) for i in range(2) for k in range(3)]
    out = pipe.process(jobs)
    assert all(r.obs.face for r in out)
    assert lm.detect_calls == 2  # round 0: the first frame of 3 sessions, round 1: their second frames


def test_obs_geometry_is_consistent() -> None:
    lm = BlobLandmarker()
    pipe = _pipeline()
    r = pipe.process([FrameJob(_frame(0, [(101, 61, 181, 161)]), lm)])[0]
    o = r.obs
    assert o.landmarks is not None and o.landmarks_crop is not None and o.colours is not None and o.pose is not None
    assert o.landmarks.shape == (106, 2) and o.colours.shape == (106, 3) and o.pose.shape == (3,)
    assert r.crop is not None
    x1, y1, x2, y2 = r.crop.box
    back = o.landmarks_crop * [(x2 - x1) / 256, (y2 - y1) / 256] + [x1, y1]
    inside = np.clip(o.landmarks, [x1, y1], [x2 - 1, y2 - 1])  # the reference clamps points into the crop
    assert np.abs(back - inside).max() <= 0.5 + 0.5 * max(x2 - x1, y2 - y1) / 256 + 1e-4
    assert (o.colours == 200).all()  # every landmark sits on the bright face


def test_detection_dataclass_box_is_float() -> None:
    d = Detection(np.array([1, 2, 3, 4], np.float32), 0.5)
    assert d.box.dtype == np.float32 and d.kps is None
