"""Capture times of live frames come from the sender (RTP timestamps, RTCP sender reports), not from arrival: a real
aiortc sender over loopback whose frames are held up in bursts before they leave, and whose wall clock is an hour
fast, against the real ingest app."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import time
from collections.abc import AsyncIterator

import aiortc.clock
import av
import httpx
import numpy as np
import pytest
import uvicorn
from aiortc import VideoStreamTrack
from fastapi import FastAPI

from common.bus import Bus
from common.messages import Frame
from infra.redis_server import RedisServer
from ingest.app import create_app
from ingest.state import IngestState
from tests.conftest import SERVICE_HEADERS, FrameTap
from tests.integration.test_ingest_webrtc import connect_client, create_and_join, ingest_settings, wait_for

pytestmark = pytest.mark.integration
FPS = 20
BURSTS = range(20, 80, 20)  # frames 20-27, 40-47, 60-67 are held 0.3 s, then sent together


class DelayedTrack(VideoStreamTrack):
    """Frames stamped at their capture time (pts), some held back before they are sent."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.index = 0
        self._t0: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._t0 is None:
            self._t0 = time.monotonic()
        i = self.index
        if i >= self.n:
            await asyncio.Event().wait()
        held = next((b for b in BURSTS if b <= i < b + 8), None)
        due = self._t0 + (i / FPS if held is None else (held + 7) / FPS + 0.3)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        img = np.full((96, 128, 3), (i * 3) % 256, np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i * 90_000 // FPS  # captured at i / FPS
        frame.time_base = fractions.Fraction(1, 90_000)
        self.index += 1
        return frame


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI, port: int) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, ws="websockets-sansio"))
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def test_capture_time_comes_from_the_sender(
    redis_server: RedisServer, bus: Bus, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_ntp = aiortc.clock.current_ntp_time
    monkeypatch.setattr(aiortc.clock, "current_ntp_time", lambda: real_ntp() + (3600 << 32))  # sender: an hour fast
    app = create_app(ingest_settings(redis_server.url, port, encoding="rgb24", max_fps=60.0, idle_timeout_s=30.0))
    client = httpx.AsyncClient(timeout=10, headers=SERVICE_HEADERS)
    async with serve_app(app, port) as url, client as http:
        http.base_url = httpx.URL(url)
        s = await create_and_join(http)
        sid = s["sid"]
        async with FrameTap(bus, sid) as tap:
            pc = await connect_client(http, sid, s["key"], DelayedTrack(80))

            state: IngestState = app.state.ingest
            peer = state.registry.get(sid)
            assert peer is not None
            clock = peer.clock

            async def all_sent() -> bool:
                return peer.pump.stats.received >= 79 and not peer.pump.waiting

            await wait_for(all_sent, 30, "every frame")
            await asyncio.sleep(0.3)
            await pc.close()
    frames: list[Frame] = tap.frames
    assert len(frames) >= 40 and frames[-1].seq >= 40  # the held bursts lose frames to newest-wins, not more
    assert clock.reports >= 1 and clock.sender_offset_s is not None
    # the sender's clock is an hour fast: seen (give or take the age of aiortc's report), and not used
    assert -3601 < clock.sender_offset_s < -3580
    steps = [(b.capture_ts - a.capture_ts) * FPS for a, b in itertools.pairwise(frames)]
    assert all(x >= 0.74 for x in steps), steps  # rising; a tighter bound is slewed in, never stepped
    whole = [x for x in steps if abs(x - round(x)) < 0.05 and round(x) >= 1]
    assert len(whole) >= 0.9 * len(steps), steps  # the sender's frame intervals, whatever the arrival
    arrival_gaps = [b.arrival_ts - a.arrival_ts for a, b in itertools.pairwise(frames)]
    assert max(arrival_gaps) > 0.3  # arrival stamps would have had the held frames jump ...
    assert sum(1 for g in arrival_gaps if g < 0.2 / FPS) >= 3  # ... and then crowd together
    lag = [f.arrival_ts - f.capture_ts for f in frames]
    assert min(lag) >= -0.005 and min(lag) < 0.1  # on our clock: never after arrival, and close to it when prompt
    held = [f.arrival_ts - f.capture_ts for f in frames if f.seq > 10 and abs(f.arrival_ts - f.capture_ts) > 0.15]
    assert len(held) >= 3  # the held frames keep the time they were captured at, 0.15-0.65 s before arrival
    assert all(b.capture_ts > a.capture_ts for a, b in itertools.pairwise(frames))


@pytest.fixture
def port() -> int:
    from infra.redis_server import free_port

    return free_port()
