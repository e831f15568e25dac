"""Ingest liveness and session ends on a real Redis: leases renewed or lost, the sweeper, first reason wins."""

from __future__ import annotations

import asyncio

import pytest

from common.bus import Bus
from common.liveness import IngestLiveness, LeaseTaken, sweep
from common.messages import Frame, SessionAnnounce
from common.session_store import SessionStore
from common.streams import FRAMES, LIVE, SESSIONS
from tests.conftest import live_session

pytestmark = pytest.mark.integration


def _frame(sid: str, seq: int) -> Frame:
    return Frame(sid=sid, seq=seq, capture_ts=float(seq), width=2, height=2, encoding="rgb24", data=b"\x01" * 12)


async def test_a_dead_ingest_s_session_is_swept_and_a_live_one_is_not(bus: Bus, sid: str) -> None:
    store = SessionStore(bus)
    await live_session(bus, sid + "a", ingest_ttl_ms=300)  # its ingest "dies": nobody renews
    await live_session(bus, sid + "b", ingest_ttl_ms=60_000)
    await bus.publish(FRAMES, _frame(sid + "a", 0))
    assert sid + "a" not in await sweep(store)  # the lease still runs
    await asyncio.sleep(0.4)
    ended = await sweep(store)
    assert sid + "a" in ended and sid + "b" not in ended
    info = await store.require(sid + "a")
    assert (info.state, info.end_reason) == ("ended", "ingest_lost")
    assert await bus.length(FRAMES, sid + "a") == 0
    assert (await store.require(sid + "b")).state == "live"
    listed = await bus.run("live", lambda r: r.smembers(LIVE.key()))
    assert (sid + "a").encode() not in listed and (sid + "b").encode() in listed
    assert sid + "a" not in await sweep(store)  # swept once


async def test_a_stalled_ingest_learns_it_lost_the_session(bus: Bus, sid: str) -> None:
    live = IngestLiveness(bus, "ingest-1", 300)
    await live.claim(sid)
    with pytest.raises(LeaseTaken, match="ingest-1"):
        await IngestLiveness(bus, "ingest-2", 300).claim(sid)
    assert await live.renew() == []
    await asyncio.sleep(0.4)  # stalled past the ttl
    assert await live.renew() == [sid] and live.held == set()  # lost, and not silently taken back


async def test_the_first_end_wins(bus: Bus, sid: str) -> None:
    await live_session(bus, sid)
    store = SessionStore(bus)
    results = await asyncio.gather(store.end(sid, "hangup"), store.end(sid, "ingest_lost"), store.end(sid, "x"))
    assert sorted(results) == [False, False, True]
    info = await store.require(sid)
    assert info.end_reason == ["hangup", "ingest_lost", "x"][results.index(True)]
    ends = [d.message for d in await bus.latest(SESSIONS, None, 500) if d.message.sid == sid]
    assert [a.state for a in ends if isinstance(a, SessionAnnounce)] == ["started", "ended"]
    assert not await store.end(sid, "again") and (await store.require(sid)).end_reason == info.end_reason
    assert not await store.end(sid + "nobody", "hangup")  # an unknown session: nothing to record
    assert not await store.update(sid + "nobody", width=3)  # and no half-empty hash is made for it
    assert await store.get(sid + "nobody") is None
