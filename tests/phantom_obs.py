"""Phantom frames through the tracker's own frame pipeline (phantom ground-truth landmarker, a test-only oracle):
the observations and crops a live session would publish, without Redis; and a scorer session holding them."""

from __future__ import annotations

import dataclasses

import numpy as np

from common.framecodec import encode_frame
from common.messages import Consent, Crop, Frame, Obs, SessionInfo
from phantom.face import Phantom
from phantom.spec import PatientSpec
from scorer.session import SessionState
from tracker.landmarkers import LandmarkerChoice
from tracker.phantom_landmarker import PhantomLandmarker
from tracker.pipeline import FrameJob, FramePipeline
from tracker.settings import TrackerSettings


@dataclasses.dataclass(frozen=True)
class Observed:
    obs: list[Obs]
    crops: list[Crop]


def observe(spec: PatientSpec, indices: range, *, fps: float = 25.0, size: tuple[int, int] = (320, 240),
            crop_size: int = 256, sid: str = "phantom", t0: float = 1_700_000_000.0,
            frames: list[np.ndarray] | None = None) -> Observed:  # fmt: skip
    """Render the phantom's frames ``indices`` (or take the given decoded ``frames``) and run them through the
    tracker pipeline."""
    settings = TrackerSettings(landmarker="phantom", crop_size=crop_size)
    choice = LandmarkerChoice("phantom", None, PhantomLandmarker())
    info = SessionInfo(sid=sid, patient_id="p", protocol=spec.protocol, consent=Consent(), state="live",
                       source="webrtc", fps=fps, created_ts=t0, phantom=spec.to_json())  # fmt: skip
    landmarker, why = choice.for_session(sid, info)
    if landmarker is None:
        raise RuntimeError(f"phantom landmarker refused the session: {why}")
    ph = Phantom(spec, size[0], size[1], fps)
    pipeline = FramePipeline(settings)
    obs: list[Obs] = []
    crops: list[Crop] = []
    for i in indices:
        rgb = ph.render(i) if frames is None else frames[i]
        frame = Frame(sid=sid, seq=i, capture_ts=t0 + i / fps, width=size[0], height=size[1], encoding="rgb24",
                      data=encode_frame(np.ascontiguousarray(rgb), "rgb24"))  # fmt: skip
        (result,) = pipeline.process([FrameJob(frame, landmarker)])
        obs.append(result.obs)
        if result.crop is not None:
            crops.append(result.crop)
    return Observed(obs, crops)


def scoring_session(seen: Observed, sid: str, fps: float = 25.0, *, crops: bool = True) -> SessionState:
    """A scorer session of a consenting pfed5 patient holding ``seen``'s observations, and its crops unless ``crops``
    is False (what a session feeding a model without an RGB stream may lack)."""
    state = SessionState(sid, 4096, 4096, 4096)
    state.obs = {o.seq: o for o in seen.obs}
    if crops:
        state.crops.update((c.seq, c.image) for c in seen.crops)
    state.info = SessionInfo(sid=sid, patient_id="p", protocol="pfed5", consent=Consent(live_scoring=True),
                             state="live", source="webrtc", fps=fps, created_ts=0.0)  # fmt: skip
    return state
