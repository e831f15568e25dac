"""The live frame path on a real Redis: the newest frame wins, the receiver never waits, every drop is counted."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest

from common.bus import Bus
from common.framecodec import decode_frame
from common.messages import Frame
from common.streams import FRAMES
from common.tasks import stop_tasks
from ingest.framing import FrameShaper
from ingest.pump import FramePump
from tests.conftest import live_session

pytestmark = pytest.mark.integration


def _frame(level: int) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.full((48, 64, 3), level, np.uint8), format="rgb24")


async def _published(bus: Bus, sid: str, n: int, pump: FramePump) -> list[Frame]:
    for _ in range(500):
        if pump.stats.published >= n and not pump.waiting:
            break
        await asyncio.sleep(0.01)
    return [d.message for d in await bus.range(FRAMES, sid)]


def _level(f: Frame) -> int:
    return int(decode_frame(f.data, f.width, f.height, f.encoding)[0, 0, 0])


async def test_newest_frame_wins_and_drops_are_counted(bus: Bus, sid: str) -> None:
    await live_session(bus, sid)
    pump = FramePump(bus, sid, FrameShaper(64, "rgb24"), max_fps=1000.0)
    runner = asyncio.ensure_future(pump.run())
    try:
        for i in range(10):  # the receive loop outruns the publisher: no await between frames
            pump.offer(_frame(i * 20), 1000.0 + i / 30)
        got = await _published(bus, sid, 1, pump)
        assert [(f.seq, _level(f), f.capture_ts) for f in got] == [(0, 180, pytest.approx(1000.0 + 9 / 30))]
        assert (pump.stats.received, pump.stats.published, pump.stats.dropped_busy) == (10, 1, 9)

        # a frame arriving while one is being published waits; a newer one replaces it, never the one in flight
        pump.offer(_frame(200), 1001.0)
        for _ in range(100):
            if not pump.waiting:
                break
            await asyncio.sleep(0)
        assert not pump.waiting  # the publisher took it
        pump.offer(_frame(210), 1001.04)
        pump.offer(_frame(220), 1001.08)
        got = await _published(bus, sid, 3, pump)
        assert [(f.seq, _level(f)) for f in got] == [(0, 180), (1, 200), (2, 220)]
        assert (pump.stats.published, pump.stats.dropped_busy) == (3, 10)

        # a burst beyond the gate's allowance (by capture time; at most 4 frames of credit) is cut at the gate
        for k in range(6):
            pump.offer(_frame(230), 1001.0804 + k * 1e-5)
        assert pump.stats.dropped_fps == 3 and pump.stats.received == 19  # 3.4 frames of credit were left
    finally:
        await stop_tasks([runner], what="pump")
