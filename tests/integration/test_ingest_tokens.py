"""Join links and page keys in Redis: one first use (also under a race), later uses resume that session only,
expiry, and any ingest process serving them, across a restart too."""

from __future__ import annotations

import asyncio

import pytest

from common.bus import Bus
from common.liveness import sweep
from common.session_store import SessionStore
from common.streams import JOIN, JOIN_LINKS
from infra.redis_server import RedisServer
from ingest.tokens import JoinTokens, PageKeys, TokenError, digest
from tests.conftest import live_session, session_of
from tests.integration.test_ingest_api import client, offer_sdp

pytestmark = pytest.mark.integration


async def test_tokens_are_single_use_expire_and_store_only_a_digest(bus: Bus) -> None:
    now = [1000.0]
    tokens = JoinTokens(bus, ttl_s=60, clock=lambda: now[0])
    token, expires = await tokens.issue("s1")
    other, _ = await tokens.issue("s2")
    assert expires == 1060.0 and len(token) >= 40 and token != other
    stored = await bus.run("x", lambda r: r.hgetall(JOIN.key(digest(token))))
    assert token.encode() not in b"".join([*stored.keys(), *stored.values()])  # the link itself is not kept
    assert 0 < await bus.run("x", lambda r: r.ttl(JOIN.key(digest(token)))) <= 120
    assert await tokens.peek(token) == ("s1", False)
    assert await tokens.claim(token) == "s1"
    with pytest.raises(TokenError, match="already used") as used:
        await tokens.claim(token)
    assert used.value.status == 409
    assert await tokens.peek(token) == ("s1", True)  # used: it may resume its own session, never start another
    assert await bus.run("x", lambda r: r.ttl(JOIN.key(digest(token)))) > 3600  # kept as long as a session may run
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "", "x" * 5000):
        with pytest.raises(TokenError, match="unknown") as unknown:
            await tokens.claim(bad)
        assert unknown.value.status == 404
    now[0] = 1061.0
    with pytest.raises(TokenError, match="expired") as expired:
        await tokens.peek(other)
    assert expired.value.status == 410


async def test_a_sessions_links_are_revoked_when_it_ends_whoever_ends_it(bus: Bus, sid: str) -> None:
    tokens = JoinTokens(bus, ttl_s=60, keep_s=12 * 3600)

    async def exists(key: str) -> bool:
        return bool(await bus.run("x", lambda r: r.exists(key)))

    async def pttl(key: str) -> int:
        return int(await bus.run("x", lambda r: r.pttl(key)))

    for ended_by in ("ingest", "sweeper"):
        s = f"{sid}-{ended_by}"
        await live_session(bus, s, ingest_ttl_ms=150 if ended_by == "sweeper" else 120_000)
        used, _ = await tokens.issue(s)
        spare, _ = await tokens.issue(s)  # a second link of the same session, never used
        assert await tokens.claim(used) == s
        assert await pttl(JOIN_LINKS.key(s)) > 3600_000  # as long as the used link
        records = [JOIN.key(digest(t)) for t in (used, spare)]
        assert all([await exists(k) for k in records])
        if ended_by == "ingest":
            assert await SessionStore(bus).end(s, "hangup")
        else:  # the ingest died: its lease lapses and a sweeper (any tracker or ingest) ends the session
            await asyncio.sleep(0.3)
            assert s in await sweep(SessionStore(bus))
        assert not any([await exists(k) for k in [*records, JOIN_LINKS.key(s)]]), ended_by
        for token in (used, spare):
            with pytest.raises(TokenError, match="unknown") as gone:
                await tokens.peek(token)
            assert gone.value.status == 404


async def test_a_link_claimed_by_many_at_once_goes_to_one(bus: Bus) -> None:
    tokens = JoinTokens(bus, ttl_s=60)
    token, _ = await tokens.issue("s-race")
    results = await asyncio.gather(*(tokens.claim(token) for _ in range(12)), return_exceptions=True)
    assert [r for r in results if r == "s-race"] == ["s-race"]
    assert all(isinstance(r, TokenError) and r.status == 409 for r in results if r != "s-race")


async def test_page_keys_are_checked_and_minted_once(bus: Bus, sid: str) -> None:
    keys = PageKeys(bus, ttl_s=60)
    key = await keys.mint(sid)
    await keys.check(sid, key)
    with pytest.raises(TokenError, match="already joined"):
        await keys.mint(sid)
    for bad_sid, bad_key, message in ((sid, "nope", "not valid"), (sid, None, "missing"), ("a:b", key, "missing")):
        with pytest.raises(TokenError, match=message) as err:
            await keys.check(bad_sid, bad_key)
        assert err.value.status == 403


async def test_two_ingest_apps_share_links_and_a_restart_keeps_them(redis_server: RedisServer, bus: Bus) -> None:
    async with client(redis_server.url) as (a, _), client(redis_server.url) as (b, _):
        created = (await a.post("/api/sessions", json={"patient_id": "p2", "protocol": "pfed5"})).json()
        assert (await b.get(f"/api/join/{created['token']}")).json()["protocol"] == "pfed5"  # made on a, seen on b
        joined = await b.post(f"/api/join/{created['token']}", json={"consent": True})
        assert joined.status_code == 200
        sid, key = joined.json()["sid"], joined.json()["key"]
        offer = await b.post(f"/api/sessions/{sid}/offer", json={"sdp": await offer_sdp(), "type": "offer"},
                             headers={"X-Session-Key": key})  # fmt: skip
        assert offer.status_code == 200
        # the page's later calls may land on the other process: its key works there, events get a frame number
        event = await a.post(f"/api/sessions/{sid}/events", json={"type": "task_start", "task": "smile", "rep": 1},
                             headers={"X-Session-Key": key})  # fmt: skip
        assert event.status_code == 200 and event.json()["seq"] == -1  # no frame published yet
        second = await a.post(f"/api/sessions/{sid}/offer", json={"sdp": await offer_sdp(), "type": "offer"},
                              headers={"X-Session-Key": key})  # fmt: skip
        assert second.status_code == 409  # the session is live on b
        end = await a.post(f"/api/sessions/{sid}/end", json={"reason": "hangup"}, headers={"X-Session-Key": key})
        assert end.json() == {"state": "ended", "reason": "hangup"}
        later = await a.post("/api/sessions", json={"patient_id": "p3", "protocol": "palsy"})
    assert (await session_of(bus, sid)).end_reason == "hangup"
    # both processes restarted: the link made before still opens its session, once
    async with client(redis_server.url) as (fresh, _):
        token = later.json()["token"]
        res = await fresh.post(f"/api/join/{token}", json={"consent": True})
        assert res.status_code == 200 and res.json()["protocol"]["name"] == "palsy"
        again = await fresh.post(f"/api/join/{token}", json={"consent": True})
        assert again.status_code == 200 and again.json()["resumed"] is True and again.json()["sid"] == res.json()["sid"]
        info = await fresh.get(f"/api/sessions/{res.json()['sid']}")
        assert info.json()["consent"] == {"live_scoring": True, "recording": False, "research": False}
