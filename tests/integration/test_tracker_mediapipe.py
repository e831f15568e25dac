"""The tracker service with its default settings: a phantom session is tracked by MediaPipe (not read from the
phantom's barcode), over real Redis, and its windows carry the landmarker identity the scorer matches models on."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from common.bus import Bus
from common.framecodec import encode_frame
from common.messages import Event, Frame, Obs, Window
from common.session_store import SessionStore
from common.streams import EVENTS, FRAMES, OBS, WINDOWS
from phantom.face import Phantom
from phantom.spec import PatientSpec
from tests.conftest import live_session
from tracker.landmarkers import LandmarkerChoice
from tracker.settings import TrackerSettings
from tracker.worker import TrackerWorker

pytestmark = pytest.mark.integration
SPEC = PatientSpec(seed=12, protocol="pfed5", severity=1.0, tasks=("smile",), reps=1)


async def test_default_tracker_runs_mediapipe_on_a_phantom_session(bus: Bus, sid: str, mediapipe_dir: Path) -> None:
    settings = TrackerSettings(  # the 16 frames arrive in one burst: none may go stale while a loaded box tracks them
        mediapipe_dir=mediapipe_dir, block_ms=10, lease_ttl_ms=1000, intra_op_threads=1, stale_ms=60_000
    )
    assert settings.landmarker == "mediapipe"  # the default, for phantom sessions too
    worker = TrackerWorker(settings, bus, LandmarkerChoice.from_settings(settings))
    ph = Phantom(SPEC, 640, 480, 30.0)
    await live_session(bus, sid, phantom=SPEC.to_json())
    await bus.publish(EVENTS, Event(sid=sid, type="task_start", ts=time.time(), task="smile", seq=0))
    n = 16
    for i in range(n):
        rgb = ph.render(i)
        await bus.publish(FRAMES, Frame(sid=sid, seq=i, capture_ts=time.time(), width=640, height=480,
                                        encoding="rgb24", data=encode_frame(rgb, "rgb24")))  # fmt: skip
    await bus.publish(EVENTS, Event(sid=sid, type="task_end", ts=time.time(), task="smile", seq=n - 1))
    deadline = time.monotonic() + 60
    windows: list[Window] = []
    while not any(w.reason == "task_end" for w in windows):
        assert time.monotonic() < deadline, "the worker did not finish the task in time"
        await worker.tick()
        windows = [d.message for d in await bus.range(WINDOWS, sid)]
    assert {w.landmarker for w in windows} == {"mediapipe-facemesh/t3"}
    obs: list[Obs] = [d.message for d in await bus.range(OBS, sid)]
    assert [o.seq for o in obs] == list(range(n)) and all(o.face for o in obs)
    exact = 0
    for o in obs:
        truth = ph.truth(o.seq).landmarks
        assert o.landmarks is not None
        exact += int(np.array_equal(o.landmarks, truth))
        iod = float(np.linalg.norm(truth[92] - truth[38]))
        assert float(np.linalg.norm(o.landmarks[33:] - truth[33:], axis=1).mean()) / iod < 0.1
    assert exact == 0  # measured by the real landmarker, never copied from the phantom's truth
    await SessionStore(bus).end(sid, "completed")
    await worker.tick()
