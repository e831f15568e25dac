"""Session API and signalling against real Redis: every bad input gets a clear 4xx and frees everything."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection
from fastapi import FastAPI

from common.bus import Bus
from common.messages import Consent
from common.session_store import SessionStore
from common.settings import CommonSettings
from infra.redis_server import RedisServer
from ingest.app import create_app
from ingest.ice import offered_host_addresses, rtc_configuration
from ingest.settings import IngestSettings
from ingest.state import IngestState
from tests.conftest import SERVICE_HEADERS, SERVICE_KEY, session_of

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def client(
    redis_url: str, *, headers: dict[str, str] | None = None, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The ingest app in this process; the client sends the service key unless ``headers`` says otherwise."""
    base: dict[str, Any] = {"api_key": SERVICE_KEY, "ice_host_addresses": ["127.0.0.1"]}
    settings = IngestSettings(common=CommonSettings(redis_url=redis_url), **{**base, **overrides})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        sent = SERVICE_HEADERS if headers is None else headers
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers=sent, timeout=10
        ) as http:
            yield http, app


def state_of(app: FastAPI) -> IngestState:
    state: IngestState = app.state.ingest
    return state


async def offer_sdp(kind: str = "video") -> str:
    pc = RTCPeerConnection(rtc_configuration([]))
    if kind == "data":
        pc.createDataChannel("x")
    else:
        pc.addTransceiver(kind, direction="sendonly")
    with offered_host_addresses(["127.0.0.1"]):
        await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


async def joined(http: httpx.AsyncClient) -> tuple[str, str, str]:
    created = await http.post(
        "/api/sessions", json={"patient_id": "p9", "protocol": "palsy", "consent": {"recording": True}}
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    res = await http.post(f"/api/join/{token}", json={"consent": True})
    assert res.status_code == 200, res.text
    return res.json()["sid"], res.json()["key"], token


async def test_create_session_writes_hash_and_link(redis_server: RedisServer, bus: Bus) -> None:
    async with client(redis_server.url) as (http, _app):
        res = await http.post(
            "/api/sessions", json={"patient_id": "p1", "protocol": "neuroface", "consent": {"recording": True}}
        )
        body = res.json()
    assert res.status_code == 201
    assert body["join_url"].endswith("/join/" + body["token"]) and len(body["token"]) >= 40
    info = await session_of(bus, body["sid"])
    assert (info.patient_id, info.protocol, info.state) == ("p1", "neuroface", "created")
    assert info.consent == Consent(live_scoring=True, recording=True, research=False)


async def test_bad_session_requests(redis_server: RedisServer) -> None:
    async with client(redis_server.url, headers={}) as (http, _app):
        no_key = await http.post("/api/sessions", json={"patient_id": "p", "protocol": "pfed5"})
        assert no_key.status_code == 401 and "X-Api-Key" in no_key.json()["detail"]
        headers = SERVICE_HEADERS
        bad_proto = await http.post("/api/sessions", json={"patient_id": "p", "protocol": "tango"}, headers=headers)
        assert bad_proto.status_code == 400 and "unknown protocol 'tango'" in bad_proto.json()["detail"]
        empty_patient = await http.post("/api/sessions", json={"patient_id": "", "protocol": "pfed5"}, headers=headers)
        assert empty_patient.status_code == 422


async def test_tokens_wrong_resumed_expired_and_consent(redis_server: RedisServer, bus: Bus) -> None:
    async with client(redis_server.url, token_ttl_s=0.5) as (http, app):
        wrong = await http.post("/api/join/not-a-real-token", json={"consent": True})
        assert wrong.status_code == 404 and "unknown join link" in wrong.json()["detail"]

        created = (await http.post("/api/sessions", json={"patient_id": "p", "protocol": "pfed5"})).json()
        no_consent = await http.post(f"/api/join/{created['token']}", json={"consent": False})
        assert no_consent.status_code == 400 and "consent" in no_consent.json()["detail"]
        assert (await http.get(f"/api/join/{created['token']}")).json()["resume"] is False
        first = await http.post(f"/api/join/{created['token']}", json={"consent": True})
        assert first.status_code == 200 and first.json()["resumed"] is False
        await asyncio.sleep(0.6)  # past the link's first-use lifetime: a joined session's link stays valid
        assert (await http.get(f"/api/join/{created['token']}")).json()["resume"] is True
        second = await http.post(f"/api/join/{created['token']}", json={"consent": True})
        assert second.status_code == 200 and second.json()["resumed"] is True
        sid, old_key, new_key = first.json()["sid"], first.json()["key"], second.json()["key"]
        assert second.json()["sid"] == sid and new_key != old_key
        event = {"type": "marker"}
        old = await http.post(f"/api/sessions/{sid}/events", json=event, headers={"X-Session-Key": old_key})
        assert old.status_code == 403 and "another page" in old.json()["detail"]  # the resumed page holds the key
        ended = await http.post(
            f"/api/sessions/{sid}/end", json={"reason": "hangup"}, headers={"X-Session-Key": new_key}
        )
        assert ended.json()["state"] == "ended"
        over = await http.post(f"/api/join/{created['token']}", json={"consent": True})
        # never a second session from one link: the session's end revoked it
        assert over.status_code == 404 and "unknown join link" in over.json()["detail"]

        stale = (await http.post("/api/sessions", json={"patient_id": "p", "protocol": "pfed5"})).json()
        await asyncio.sleep(0.6)
        expired = await http.post(f"/api/join/{stale['token']}", json={"consent": True})
        assert expired.status_code == 410 and "expired" in expired.json()["detail"]
        peek = await http.get(f"/api/join/{stale['token']}")
        assert peek.status_code == 410
        assert len(state_of(app).registry) == 0
    # a session nobody joined is gone with its link (no 7-day leftovers of unused links)
    assert await SessionStore(bus).get(stale["sid"]) is None


async def test_bad_offers_are_refused_and_free_everything(redis_server: RedisServer, bus: Bus) -> None:
    async with client(redis_server.url, max_sdp_bytes=4096) as (http, app):
        sid, key, _ = await joined(http)
        url = f"/api/sessions/{sid}/offer"
        h = {"X-Session-Key": key}

        async def post(body: Any, headers: dict[str, str] = h) -> httpx.Response:
            return await http.post(url, json=body, headers=headers)

        assert (await post({"sdp": "v=0", "type": "offer"}, {"X-Session-Key": "nope"})).status_code == 403
        r = await http.post(url, content=b"{not json", headers=h)
        assert r.status_code == 400 and "JSON" in r.json()["detail"]
        r = await post({"sdp": "hello there", "type": "offer"})
        assert r.status_code == 400 and "malformed SDP" in r.json()["detail"]
        r = await post({"sdp": "v=0\r\nthis is not sdp\r\n", "type": "offer"})
        assert r.status_code == 400 and "malformed SDP line" in r.json()["detail"]
        r = await post({"sdp": await offer_sdp(), "type": "answer"})
        assert r.status_code == 400 and "type 'offer'" in r.json()["detail"]
        r = await post({"sdp": "v=0\r\n" + "a=x\r\n" * 5000, "type": "offer"})
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        r = await post({"sdp": await offer_sdp("audio"), "type": "offer"})
        assert r.status_code == 400 and "no video" in r.json()["detail"]
        r = await post({"sdp": await offer_sdp("data"), "type": "offer"})
        assert r.status_code == 400 and "no video" in r.json()["detail"]
        broken = (
            (await offer_sdp())
            .replace("a=fingerprint:sha-256", "a=fingerprint:sha-256 ZZ")
            .replace("a=ice-ufrag:", "a=ice-uf:")
        )
        r = await post({"sdp": broken, "type": "offer"})
        assert r.status_code == 400, r.text
        assert len(state_of(app).registry) == 0

        # a good offer still works after all that; a second offer from the page holding the key takes the
        # connection over (a reconnect) and the session keeps one peer
        good = await post({"sdp": await offer_sdp(), "type": "offer"})
        assert good.status_code == 200 and good.json()["type"] == "answer"
        assert "127.0.0.1" in good.json()["sdp"]
        first = state_of(app).registry.get(sid)
        again = await post({"sdp": await offer_sdp(), "type": "offer"})
        assert again.status_code == 200
        assert len(state_of(app).registry) == 1 and state_of(app).registry.get(sid) is not first
        assert first is not None and first.closed.is_set() and first.end_reason is None  # freed, nothing ended
        ended = await http.post(f"/api/sessions/{sid}/end", json={"reason": "hangup"}, headers=h)
        assert ended.json() == {"state": "ended", "reason": "hangup"}
        assert len(state_of(app).registry) == 0
    info = await session_of(bus, sid)
    assert (info.state, info.end_reason) == ("ended", "hangup")


async def test_inputs_that_once_gave_a_500_get_a_clear_4xx(redis_server: RedisServer) -> None:
    """A truncated offer, offers with codecs aiortc does not know, and session ids Redis keys refuse."""
    async with client(redis_server.url) as (http, _app):
        good = await offer_sdp()
        for cut in (0.3, 0.5, 0.7, 0.9, 0.97):
            sid, key, _ = await joined(http)
            cut_offer = {"sdp": good[: int(len(good) * cut)], "type": "offer"}
            r = await http.post(f"/api/sessions/{sid}/offer", json=cut_offer, headers={"X-Session-Key": key})
            assert 400 <= r.status_code < 500, (cut, r.text)
        for codec in ("VP8", "H264", "rtx"):
            sid, key, _ = await joined(http)
            odd = good.replace(codec, "XYZ9")
            r = await http.post(f"/api/sessions/{sid}/offer", json={"sdp": odd, "type": "offer"},
                                headers={"X-Session-Key": key})  # fmt: skip
            assert r.status_code in (200, 400), (codec, r.text)  # answered with the codecs left, or refused
        sid, key, _ = await joined(http)
        none_left = good
        for codec in ("VP8", "H264"):
            none_left = none_left.replace(codec, "XYZ9")
        r = await http.post(f"/api/sessions/{sid}/offer", json={"sdp": none_left, "type": "offer"},
                            headers={"X-Session-Key": key})  # fmt: skip
        assert r.status_code == 400 and "cannot be used" in r.json()["detail"], r.text
        for bad in ("a:b", "{x}", "x}", "%7B", "s" * 65):
            r = await http.get(f"/api/sessions/{bad}")
            assert r.status_code in (404, 422), (bad, r.text)


async def test_connect_timeout_when_no_media_arrives(redis_server: RedisServer, bus: Bus) -> None:
    async with client(redis_server.url, connect_timeout_s=0.5) as (http, app):
        sid, key, _ = await joined(http)
        res = await http.post(
            f"/api/sessions/{sid}/offer",
            json={"sdp": await offer_sdp(), "type": "offer"},
            headers={"X-Session-Key": key},
        )
        assert res.status_code == 200
        for _ in range(60):
            if len(state_of(app).registry) == 0:
                break
            await asyncio.sleep(0.05)
        assert len(state_of(app).registry) == 0
    info = await session_of(bus, sid)
    assert (info.state, info.end_reason) == ("ended", "connect_timeout")


async def test_events_need_a_known_task_and_a_live_peer(redis_server: RedisServer) -> None:
    async with client(redis_server.url) as (http, _app):
        sid, key, _ = await joined(http)
        h = {"X-Session-Key": key}
        r = await http.post(f"/api/sessions/{sid}/events", json={"type": "task_start", "task": "moonwalk"}, headers=h)
        assert r.status_code == 400 and "no task 'moonwalk'" in r.json()["detail"]
        r = await http.post(f"/api/sessions/{sid}/events", json={"type": "task_start", "task": "smile"}, headers=h)
        assert r.status_code == 409
        r = await http.post(f"/api/sessions/{sid}/events", json={"type": "explode", "task": "smile"}, headers=h)
        assert r.status_code == 422
