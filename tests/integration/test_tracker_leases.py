"""The tracker's session lease on a real Redis while a batch takes longer than the lease's TTL: the worker keeps
renewing on its own schedule, so a rival worker competing the whole time never gets the session and every frame
is observed once, by the first worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from common.bus import Bus
from common.framecodec import encode_frame
from common.leases import Leases
from common.messages import Frame, SessionInfo
from common.ownership import SessionOwnership
from common.streams import FRAMES, OBS
from infra.redis_server import RedisServer
from phantom.face import Phantom
from phantom.spec import PatientSpec
from tests.conftest import live_session, open_bus
from tracker.landmarker import Detection, FrameInput, Points
from tracker.landmarkers import LandmarkerChoice
from tracker.phantom_landmarker import PhantomLandmarker
from tracker.settings import TrackerSettings
from tracker.worker import TrackerWorker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
SPEC = PatientSpec(seed=7, protocol="pfed5", severity=2.0)
TTL_MS = 600
BATCH_S = 2.0 * TTL_MS / 1000  # each landmark call outlasts the lease twice over
N_FRAMES = 6


class SlowLandmarker:
    """The phantom oracle, with every landmark call taking ``delay_s`` (a loaded machine, a big batch)."""

    def __init__(self, delay_s: float) -> None:
        self.inner = PhantomLandmarker()
        self.name = "slow-phantom"
        self.delay_s = delay_s
        self.calls = 0

    def open_session(self, sid: str, info: SessionInfo) -> str:
        return self.inner.open_session(sid, info)

    def close_session(self, sid: str) -> None:
        self.inner.close_session(sid)

    def detect(self, frames: Sequence[FrameInput]) -> list[list[Detection]]:
        return self.inner.detect(frames)

    def landmarks(self, frames: Sequence[FrameInput], boxes: Sequence[Points]) -> list[Points]:
        self.calls += 1
        time.sleep(self.delay_s)  # runs in the worker's thread, as a real model call does
        return self.inner.landmarks(frames, boxes)


@pytest.fixture
async def lbus(module_redis: RedisServer) -> AsyncIterator[Bus]:
    async for b in open_bus(module_redis.url):
        yield b


async def test_a_slow_batch_does_not_lose_the_lease(lbus: Bus) -> None:
    sid = "slowlease1"
    ph = Phantom(SPEC, 160, 120, 10.0)
    await live_session(lbus, sid, phantom=SPEC.to_json())
    slow = SlowLandmarker(BATCH_S)
    settings = TrackerSettings(landmarker="phantom", lease_ttl_ms=TTL_MS, block_ms=10, read_count=1,
                               stale_ms=60_000, reclaim_idle_ms=200, consumer="slow-worker")  # fmt: skip
    worker = TrackerWorker(settings, lbus, LandmarkerChoice("phantom", None, slow))
    leases = Leases(lbus, "tracker")
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        deadline = time.monotonic() + 10
        while await leases.holder(sid) != "slow-worker":
            assert time.monotonic() < deadline, "the worker never took the session"
            await asyncio.sleep(0.02)
        for i in range(N_FRAMES):  # read one at a time: N_FRAMES batches of BATCH_S each
            data = encode_frame(ph.render(i), "rgb24")
            await lbus.publish(FRAMES, Frame(sid=sid, seq=i, capture_ts=time.time(), width=160, height=120,
                                             encoding="rgb24", data=data, source_index=i))  # fmt: skip
        rival = SessionOwnership(lbus, "tracker", "rival-worker", TTL_MS)
        rival.started(sid)  # it owns nothing, so it competes at once, every 50 ms, the whole time
        holders: set[str | None] = set()
        deadline = time.monotonic() + N_FRAMES * BATCH_S + 15
        while len(await lbus.range(OBS, sid)) < N_FRAMES:
            assert time.monotonic() < deadline, f"only {len(await lbus.range(OBS, sid))} of {N_FRAMES} observed"
            change = await rival.maintain()
            assert not change.gained, f"the rival took the session during a slow batch (holders seen: {holders})"
            holders.add(await leases.holder(sid))
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
    assert slow.calls >= 3  # several batches, each longer than the lease, ran while the rival competed
    assert holders == {"slow-worker"}
    assert worker.stats.sessions_taken == 1  # never lost and taken back
    obs = [d.message for d in await lbus.range(OBS, sid)]
    assert sorted(o.seq for o in obs) == list(range(N_FRAMES)) and all(o.face for o in obs)
