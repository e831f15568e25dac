"""Phantom frames through the tracker: landmarks equal the ground truth, crops map back, pose follows the truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from common.framecodec import encode_frame
from common.messages import Consent, Frame, SessionInfo
from phantom.crop import KEEP_71, KEEP_73, crop_frame
from phantom.face import Phantom
from phantom.spec import PatientSpec
from tracker.landmarker import FrameInput
from tracker.phantom_landmarker import PhantomLandmarker
from tracker.pipeline import FrameJob, FramePipeline
from tracker.refcrop import crop_to_frame, frame_to_crop
from tracker.settings import TrackerSettings

pytestmark = pytest.mark.unit
SPEC = PatientSpec(seed=3, protocol="pfed5", severity=2.0)


def _info(sid: str, phantom: str = "") -> SessionInfo:
    return SessionInfo(sid=sid, patient_id="x", protocol="pfed5", consent=Consent(), state="live", source="webrtc",
                       fps=30.0, created_ts=0.0, phantom=phantom)  # fmt: skip


def _frame(ph: Phantom, i: int, encoding: str = "rgb24", rgb: np.ndarray | None = None) -> Frame:
    img = ph.render(i) if rgb is None else rgb
    return Frame(sid="p1", seq=i, capture_ts=i / ph.fps, width=img.shape[1], height=img.shape[0], encoding=encoding,
                 data=encode_frame(img, encoding))  # fmt: skip


@pytest.fixture
def landmarker() -> PhantomLandmarker:
    lm = PhantomLandmarker()
    assert lm.open_session("p1", _info("p1", SPEC.to_json())) == ""
    return lm


def test_landmarks_equal_the_truth_and_crops_map_back(landmarker: PhantomLandmarker) -> None:
    ph = Phantom(SPEC, 320, 240, 30.0)
    pipe = FramePipeline(TrackerSettings(crop_size=224))
    indices = list(range(0, ph.n_frames, max(1, ph.n_frames // 25)))
    results = pipe.process([FrameJob(_frame(ph, i), landmarker) for i in indices])
    for i, r in zip(indices, results, strict=True):
        truth = ph.truth(i).landmarks
        assert r.obs.face, r.obs.reason
        assert r.obs.landmarks is not None and r.crop is not None and r.obs.landmarks_crop is not None
        np.testing.assert_array_equal(r.obs.landmarks, truth)
        cut = r.crop.box.astype(np.int32)
        # the RGB crop's coordinates map back to frame px exactly
        np.testing.assert_allclose(crop_to_frame(frame_to_crop(truth, cut, 224), cut, 224), truth, atol=1e-6)
        # the 256 reference landmarks are the truth, rounded twice as the reference does
        back = crop_to_frame(r.obs.landmarks_crop, cut, 256)
        w, h = cut[2] - cut[0], cut[3] - cut[1]
        inside = np.clip(np.rint(truth), cut[:2], cut[2:] - 1)
        assert (np.abs(back - inside) <= [0.5 * w / 256 + 1e-6, 0.5 * h / 256 + 1e-6]).all()


def test_downscaled_and_jpeg_frames_still_give_the_scaled_truth(landmarker: PhantomLandmarker) -> None:
    ph = Phantom(SPEC, 320, 240, 30.0)
    pipe = FramePipeline(TrackerSettings())
    r = pipe.process([FrameJob(_frame(ph, 40, encoding="jpeg"), landmarker)])[0]
    assert r.obs.face and r.obs.landmarks is not None
    np.testing.assert_allclose(r.obs.landmarks, ph.truth(40).landmarks, atol=1e-4)


def test_pose_follows_the_phantom_truth(landmarker: PhantomLandmarker) -> None:
    ph = Phantom(SPEC, 640, 480, 30.0)
    pipe = FramePipeline(TrackerSettings())
    indices = list(range(0, ph.n_frames, 9))
    # landmarks from the tracker, pose from our PnP: compared with the phantom's own head pose
    results = pipe.process([FrameJob(_frame(ph, i), landmarker) for i in indices[:60]])
    est = np.array([r.obs.pose for r in results])
    truth = np.array([ph.truth(i).pose for i in indices[:60]])
    err = est - truth
    # the generic head model's proportions are not this face's: a constant pitch offset per face (seen up to 15 deg
    # over phantom identities), so pitch is compared after removing it; yaw and roll are compared as they are
    assert np.abs(err[:, 2]).mean() < 1.0  # roll (an asymmetric smile tilts the mouth corners a little)
    assert np.abs(err[:, 0]).mean() < 3.0  # yaw
    assert np.abs(err[:, 1] - np.median(err[:, 1])).mean() < 3.0  # pitch, offset removed
    for k in range(3):
        assert np.corrcoef(est[:, k], truth[:, k])[0, 1] > 0.6


def test_unreadable_index_means_no_face(landmarker: PhantomLandmarker) -> None:
    ph = Phantom(SPEC, 320, 240, 30.0)
    rgb = ph.render(5)
    rgb[-20:] = 128  # the index strip is gone
    r = FramePipeline(TrackerSettings()).process([FrameJob(_frame(ph, 5, rgb=rgb), landmarker)])[0]
    assert (r.obs.face, r.obs.reason) == (False, "no_face")


def test_sessions_without_a_phantom_are_refused() -> None:
    lm = PhantomLandmarker()
    assert lm.open_session("x", _info("x")) == "not_phantom"
    assert lm.open_session("y", _info("y", "{not json")) == "bad_phantom_spec"


def test_dataset_crops_and_live_crops_are_one_rule(landmarker: PhantomLandmarker) -> None:
    """The phantom's dataset crop (what a model trains on) equals the live tracker's crop of the same frame."""
    ph = Phantom(SPEC, 640, 480, 30.0)
    rgb = ph.render(7)
    data = crop_frame(rgb, ph.truth(7).landmarks)
    live = FramePipeline(TrackerSettings(crop_size=256)).process([FrameJob(_frame(ph, 7, rgb=rgb), landmarker)])[0]
    assert live.crop is not None and live.obs.landmarks_crop is not None and live.obs.colours is not None
    assert np.array_equal(live.crop.image, data.image)
    assert np.array_equal(live.obs.landmarks_crop[KEEP_73].astype(np.int32), data.points73)
    assert np.array_equal(live.obs.colours[KEEP_73][KEEP_71].astype(np.float32), data.colour71)


def test_a_phantom_that_cannot_be_built_is_tried_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A size the phantom refuses must not be rebuilt on every frame (a bad spec once stalled every session)."""
    import tracker.phantom_landmarker as module

    builds: list[tuple[int, int]] = []

    def counting(spec: PatientSpec, width: int, height: int, fps: float) -> Phantom:
        builds.append((width, height))
        return Phantom(spec, width, height, fps)

    monkeypatch.setattr(module, "Phantom", counting)
    lm = PhantomLandmarker()
    info = dataclasses.replace(_info("p1", SPEC.to_json()), width=40, height=30)  # below the phantom's minimum size
    assert lm.open_session("p1", info) == ""
    ph = Phantom(SPEC, 640, 480, 30.0)
    for i in range(5):
        assert lm.truth(FrameInput("p1", i, ph.render(i), source_index=i)) is None
    assert builds == [(40, 30)]
