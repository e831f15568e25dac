"""The bus under network faults, through a TCP proxy in front of a real Redis: half-open sockets, lost replies."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from common.bus import Backoff, Bus, Timeouts
from common.dedupe import RecentKeys
from common.errors import BusUnavailable
from common.messages import Event
from common.streams import StreamSpec
from infra.redis_server import RedisServer
from tests.faults import FaultProxy

pytestmark = pytest.mark.integration
GROUPED = StreamSpec("faulty:{sid}", Event, maxlen=1000, group="g")


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[FaultProxy]:
    p = await FaultProxy(redis_server.port).start()
    try:
        yield p
    finally:
        await p.stop()


def _event(sid: str, i: int) -> Event:
    return Event(sid=sid, type="marker", ts=float(i), rep=i)


async def test_half_open_socket_raises_within_the_budget(proxy: FaultProxy, sid: str) -> None:
    bus = await Bus.connect(proxy.url, backoff=Backoff(first_s=0.05, cap_s=0.2, budget_s=1.5),
                            timeouts=Timeouts(connect_s=0.5, read_s=0.4))  # fmt: skip
    try:
        await bus.publish(GROUPED, _event(sid, 0))
        proxy.mode = "blackhole"  # the server is gone without a goodbye: writes succeed, no reply ever comes
        t0 = time.monotonic()
        with pytest.raises(BusUnavailable, match="unreachable"):
            await bus.publish(GROUPED, _event(sid, 1))
        took = time.monotonic() - t0
        assert 1.0 <= took <= 2.5, took  # gave up once the 1.5 s budget was spent, not after a long hang
        assert bus.stats.reconnects >= 2
        t0 = time.monotonic()
        with pytest.raises(BusUnavailable):
            await bus.consume(GROUPED, [sid], "c", block_ms=200)
        assert time.monotonic() - t0 <= 2.5
        proxy.mode = "pass"
        await bus.publish(GROUPED, _event(sid, 2))  # the bus recovers once the network does
    finally:
        await bus.close()


async def test_blocking_reads_stay_below_the_read_timeout(proxy: FaultProxy, sid: str) -> None:
    bus = await Bus.connect(proxy.url, timeouts=Timeouts(connect_s=0.5, read_s=0.5))
    try:
        t0 = time.monotonic()
        assert await bus.consume(GROUPED, [sid], "c", block_ms=350) == []  # blocks, then answers: no timeout
        assert 0.3 <= time.monotonic() - t0 < 0.5
        assert bus.stats.reconnects == 0
        with pytest.raises(ValueError, match="read timeout"):
            await bus.consume(GROUPED, [sid], "c", block_ms=500)
        with pytest.raises(ValueError, match="read timeout"):
            await bus.tail({(GROUPED, sid): "0-0"}, block_ms=800)
    finally:
        await bus.close()


async def test_a_publish_whose_reply_was_lost_is_retried_and_counted_once(proxy: FaultProxy, sid: str) -> None:
    bus = await Bus.connect(proxy.url, backoff=Backoff(first_s=0.02, cap_s=0.1, budget_s=5))
    try:
        await bus.publish(GROUPED, _event(sid, 0))
        proxy.mode = "lose_reply"
        assert await bus.publish(GROUPED, _event(sid, 1)) is not None
        await bus.publish(GROUPED, _event(sid, 2))
        assert proxy.lost_replies == 1 and bus.stats.reconnects == 1
        stored = [d.message.rep for d in await bus.range(GROUPED, sid)]
        assert stored == [0, 1, 1, 2]  # Redis applied the first try: the retry stored it again
        seen: RecentKeys[int] = RecentKeys(16)
        counted = [d.message.rep for d in await bus.consume(GROUPED, [sid], "c") if seen.add(d.message.rep)]
        assert counted == [0, 1, 2]  # the consumer's natural-key de-duplication counts it once
    finally:
        await bus.close()
