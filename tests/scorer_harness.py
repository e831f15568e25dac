"""The live chain for scorer tests, on a real Redis: phantom frames published by ingest's own frame pump, the
tracker worker (phantom ground-truth landmarker: a test-only oracle, so scores depend on the scorer alone) and one
or more scorer workers, ticking side by side in this event loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import av
import numpy as np

from common.backlog import group_backlog
from common.bus import Bus
from common.leases import Leases
from common.messages import Consent, Score, Window
from common.settings import CommonSettings
from common.streams import FRAMES, SCORES, WINDOWS
from ingest.framing import FrameShaper
from ingest.pump import FramePump
from ingest.sessions import IngestSessions, SessionSpec
from phantom.face import Phantom
from phantom.spec import PatientSpec
from scorer.settings import ScorerSettings
from scorer.worker import ScorerWorker
from tests.conftest import ingest_sessions
from tracker.landmarkers import LandmarkerChoice
from tracker.phantom_landmarker import PhantomLandmarker
from tracker.settings import TrackerSettings
from tracker.worker import TrackerWorker

SIZE = (320, 240)


def scorer_settings(url: str, models: Path, **kw: object) -> ScorerSettings:
    common = CommonSettings(redis_url=url, models_dir=models)
    base = {"block_ms": 10, "lease_ttl_ms": 1000, "reclaim_idle_ms": 300, "intra_op_threads": 1, "max_wait_ms": 2.0,
            "models_poll_s": 0.3, "end_grace_s": 1.0, "stale_ms": 60_000}  # fmt: skip
    base.update(kw)
    return ScorerSettings(common=common, **base)  # type: ignore[arg-type]


def tracker_worker(bus: Bus, **kw: object) -> TrackerWorker:
    # the phantom rendered at 320x240 is soft: below the default sharpness gate, which these tests do not test
    base: dict[str, object] = {"landmarker": "phantom", "crop_size": 256, "block_ms": 10, "lease_ttl_ms": 1000,
                               "stale_ms": 60_000, "min_sharpness": 0.0}  # fmt: skip
    base.update(kw)
    settings = TrackerSettings(**base)  # type: ignore[arg-type]
    return TrackerWorker(settings, bus, LandmarkerChoice("phantom", None, PhantomLandmarker()))


async def open_session(
    bus: Bus, sid: str, spec: PatientSpec, fps: float, *, live_scoring: bool = True, tracked: bool = True
) -> IngestSessions:
    """Create and start the session as the ingest does (hash, streams, ingest lease, announcement)."""
    sessions = ingest_sessions(bus)
    consent = Consent(live_scoring=live_scoring)
    await sessions.create(SessionSpec(f"p-{sid}", spec.protocol, consent, fps, phantom=spec.to_json()), sid=sid)
    await sessions.start(sid, spec.protocol)
    if tracked:  # a patient's first frames reach a tracker that already tracks the session (its lease round)
        leases = Leases(bus, "tracker")

        async def held() -> bool:
            return await leases.holder(sid) is not None

        await wait_for(held, 30, f"a tracker to take session {sid}")
    return sessions


class PhantomStream:
    """Publishes a phantom's frames through ingest's FramePump (rgb24, capture time = t0 + i / fps)."""

    def __init__(self, bus: Bus, sid: str, spec: PatientSpec, fps: float) -> None:
        self.phantom = Phantom(spec, SIZE[0], SIZE[1], fps)
        self.pump = FramePump(bus, sid, FrameShaper(max_width=640, encoding="rgb24"), max_fps=fps * 2)
        self.pump_bus = bus
        self.fps = fps
        self.t0 = time.time()

    async def publish(self, index: int, backlog: int = 12) -> int:
        """Publish frame ``index`` once the tracker has fewer than ``backlog`` frames unread (as fast file ingest
        does), so the bounded frames stream never drops one."""
        while (await group_backlog(self.pump_bus, FRAMES, self.pump.sid) or 0) >= backlog:
            await asyncio.sleep(0.005)
        rgb = np.ascontiguousarray(self.phantom.render(index))
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        return await self.pump.publish(frame, self.t0 + index / self.fps)


@contextlib.asynccontextmanager
async def running(*workers: TrackerWorker | ScorerWorker) -> AsyncIterator[None]:
    """Tick every worker in the background until the block ends."""
    stop = asyncio.Event()

    async def loop(w: TrackerWorker | ScorerWorker) -> None:
        if isinstance(w, ScorerWorker):
            await w.scan_models()
        while not stop.is_set():
            await w.tick()

    tasks = [asyncio.create_task(loop(w)) for w in workers]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for w in workers:
            if isinstance(w, ScorerWorker):
                await w.ownership.release_all()
                w.batcher.close()


async def scores(bus: Bus, sid: str) -> list[Score]:
    return [d.message for d in await bus.range(SCORES, sid)]


async def windows(bus: Bus, sid: str) -> list[Window]:
    return [d.message for d in await bus.range(WINDOWS, sid)]


async def wait_for(cond: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def task_scores_for(bus: Bus, sids: Sequence[str]) -> dict[str, list[Score]]:
    return {sid: [s for s in await scores(bus, sid) if s.kind == "task"] for sid in sids}
