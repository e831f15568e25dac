"""The ingest's edge on a real Redis: credentials by default (and rotation), phantom specs only where allowed and
bounded, bodies capped while they are read, rate limits, Redis memory admission, error bodies that echo nothing,
security headers on every page, the Host check, no API docs by default."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.routing import APIRoute

from common.errors import ConfigError
from common.session_store import SessionStore
from common.settings import CommonSettings
from infra.redis_server import RedisServer
from ingest import api, page_api, upload
from ingest.app import create_app
from ingest.settings import IngestSettings
from phantom.spec import PatientSpec
from tests.conftest import SERVICE_HEADERS
from tests.integration.test_ingest_api import client, state_of

pytestmark = pytest.mark.integration

SESSION = {"patient_id": "pt-1", "protocol": "pfed5"}


async def test_the_ingest_needs_a_credential(redis_server: RedisServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a service key"):
        create_app(IngestSettings(common=CommonSettings(redis_url=redis_server.url)))
    with pytest.raises(ConfigError, match="too short"):
        async with client(redis_server.url, api_key="short"):
            pass
    with pytest.raises(ConfigError, match="cannot read the service key file"):
        async with client(redis_server.url, api_key=None, api_key_file=tmp_path / "missing.key"):
            pass


async def test_every_service_route_refuses_a_missing_or_wrong_key(redis_server: RedisServer) -> None:
    async with client(redis_server.url, headers={}) as (http, _app):
        made = await http.post("/api/sessions", json=SESSION, headers=SERVICE_HEADERS)
        sid = made.json()["sid"]
        routes = [r for router in (api.router, page_api.router, upload.router) for r in router.routes]
        guarded = {
            (method, r.path)
            for r in routes
            if isinstance(r, APIRoute)
            and any(d.call.__name__ == "require_service_key" for d in r.dependant.dependencies)
            for method in r.methods
        }
        assert guarded == {("POST", "/api/sessions"), ("GET", "/api/sessions/{sid}"),
                           ("POST", "/api/sessions/{sid}/stop"), ("POST", "/api/uploads")}  # fmt: skip
        for method, path in sorted(guarded):
            url = path.replace("{sid}", sid)
            for headers in ({}, {"X-Api-Key": "not-the-key-0123456789abcdef"}, {"X-Api-Key": ""}):
                res = await http.request(method, url, json={"reason": "clinician"}, headers=headers)
                assert res.status_code == 401, (method, path, headers, res.text)
                assert "X-Api-Key" in res.json()["detail"]
        # the page's own routes take the page key instead: without it they refuse too
        page_routes = {(m, r.path) for r in routes if isinstance(r, APIRoute) for m in r.methods} - guarded
        assert page_routes == {("GET", "/api/join/{token}"), ("POST", "/api/join/{token}"),
                               ("POST", "/api/sessions/{sid}/offer"), ("POST", "/api/sessions/{sid}/events"),
                               ("POST", "/api/sessions/{sid}/end")}  # fmt: skip
        for _method, path in sorted(p for p in page_routes if "{sid}" in p[1]):
            res = await http.post(path.replace("{sid}", sid), json={"type": "marker"}, headers=SERVICE_HEADERS)
            assert res.status_code == 403, (path, res.text)  # the service key is not a page key
        # with the key, reading a session works; it names the patient, so it is never cached
        info = await http.get(f"/api/sessions/{sid}", headers=SERVICE_HEADERS)
        assert info.status_code == 200 and info.json()["patient_id"] == "pt-1"
        assert info.headers["cache-control"] == "no-store"
        stopped = await http.post(f"/api/sessions/{sid}/stop", json={"reason": "clinician"}, headers=SERVICE_HEADERS)
        assert stopped.json() == {"state": "ended", "reason": "clinician"}


async def test_a_rotated_key_file_takes_effect_without_a_restart(redis_server: RedisServer, tmp_path: Path) -> None:
    key_file = tmp_path / "ingest.key"
    key_file.write_text("first-key-0123456789abcdef\n")
    async with client(redis_server.url, headers={}, api_key=None, api_key_file=key_file) as (http, _app):
        ok = await http.post("/api/sessions", json=SESSION, headers={"X-Api-Key": "first-key-0123456789abcdef"})
        assert ok.status_code == 201
        await asyncio.sleep(0.01)
        key_file.write_text("second-key-0123456789abcdef\n")
        old = await http.post("/api/sessions", json=SESSION, headers={"X-Api-Key": "first-key-0123456789abcdef"})
        new = await http.post("/api/sessions", json=SESSION, headers={"X-Api-Key": "second-key-0123456789abcdef"})
        assert (old.status_code, new.status_code) == (401, 201)


async def test_phantom_specs_only_where_allowed_and_bounded(redis_server: RedisServer, bus: Any) -> None:
    good = PatientSpec(seed=1, protocol="pfed5", severity=2.0, reps=1).to_json()  # about 20 s of performance
    async with client(redis_server.url) as (http, _app):
        refused = await http.post("/api/sessions", json={**SESSION, "phantom": good})
        assert refused.status_code == 403 and "FEQA_INGEST_ALLOW_PHANTOM" in refused.json()["detail"]
    async with client(redis_server.url, allow_phantom=True, phantom_max_s=60) as (http, _app):
        ok = await http.post("/api/sessions", json={**SESSION, "phantom": good})
        assert ok.status_code == 201
        stored = (await SessionStore(bus).require(ok.json()["sid"])).phantom
        assert PatientSpec.from_json(stored) == PatientSpec.from_json(good)
        spec = json.loads(good)
        cases = [
            ({**spec, "reps": 2000}, 400, "at most 5 times"),
            ({**spec, "reps": 5}, 400, "the limit is 60 s"),  # about 100 s
            ({**spec, "protocol": "palsy", "severity": 1.0}, 400, "for protocol palsy"),
            ({**spec, "seed": -4}, 400, "bad phantom spec"),
            ({**spec, "seed": 10**40}, 400, "seeds must lie"),
            ({**spec, "severity": 9}, 400, "bad phantom spec"),
            ({"seed": 1}, 400, "bad phantom spec"),
            ("not json at all", 400, "bad phantom spec"),
            ({**spec, "junk": "x" * 3000}, 400, "longer than 2048"),
            ({**spec, "junk": "x" * 6000}, 422, "phantom"),
        ]
        for body, status, message in cases:
            text = body if isinstance(body, str) else json.dumps(body)
            res = await http.post("/api/sessions", json={**SESSION, "phantom": text})
            assert res.status_code == status and message in res.json()["detail"], (body, res.text)
            assert len(res.text) < 500


async def test_bodies_are_capped_while_they_are_read(redis_server: RedisServer) -> None:
    sent = 0

    async def endless_json() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"patient_id": "'
        for _ in range(1600):  # 100 MB if it were all read
            sent += 65_536
            yield b"a" * 65_536

    async with client(redis_server.url) as (http, _app):
        res = await http.post("/api/sessions", content=endless_json(), headers={"Content-Type": "application/json"})
        assert res.status_code == 413 and "16384" in res.json()["detail"]
        assert sent <= 4 * 65_536, f"{sent} bytes read for a 16 KB cap"
        declared = await http.post("/api/sessions", content=b"{}", headers={"Content-Length": str(100 << 20)})
        assert declared.status_code == 413
        bad_length = await http.post("/api/sessions", content=b"{}", headers={"Content-Length": "12abc"})
        assert bad_length.status_code == 400
        # a 10 MB patient id is refused by the cap, a 5 KB one by the rule; neither comes back in the answer
        for size in (10 << 20, 5000):
            res = await http.post("/api/sessions", json={**SESSION, "patient_id": "Z" * size})
            assert res.status_code in (413, 422) and len(res.text) < 400 and "ZZZZZZZZZZZZZZZZ" not in res.text
        odd = await http.post("/api/sessions", json={**SESSION, "patient_id": "p\u00e9/../x"})
        assert odd.status_code == 422 and "letters, digits" in odd.json()["detail"]
        for bad_sid in ("a:b", "{x}", "s" * 65, "a b"):
            res = await http.get(f"/api/sessions/{bad_sid}")
            assert res.status_code in (404, 422), (bad_sid, res.status_code)


async def test_rate_limits_per_client(redis_server: RedisServer) -> None:
    async with client(redis_server.url, rate_sessions_per_min=6, rate_joins_per_min=4) as (http, app):
        codes = [(await http.post("/api/sessions", json=SESSION)).status_code for _ in range(5)]
        assert codes == [201, 201, 201, 429, 429]  # a burst of half a minute's allowance, then refused
        limited = await http.post("/api/sessions", json=SESSION)
        assert int(limited.headers["retry-after"]) >= 1 and "try again in" in limited.json()["detail"]
        joins = [(await http.get("/api/join/guess-" + str(i))).status_code for i in range(4)]
        assert joins == [404, 404, 429, 429]  # guessing links is slowed down too
        # another client is not affected (the limiter keys on the caller's address): this does not raise
        state_of(app).limiter.hit("sessions", "10.0.0.9", 6)
        assert len(state_of(app).limiter) == 3


async def test_new_sessions_wait_while_redis_is_near_its_budget(tmp_path: Path) -> None:
    with RedisServer(maxmemory="24mb") as server:
        live = redis.Redis.from_url(server.url)
        assert live.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        async with client(server.url) as (http, _app):
            assert (await http.post("/api/sessions", json=SESSION)).status_code == 201
            filler = b"\x00" * (1 << 20)
            try:
                for _ in range(40):  # fill it the way a stream of frames would
                    live.xadd("frames:{filler}", {"b": filler})
            except redis.exceptions.OutOfMemoryError:
                pass
            res = await http.post("/api/sessions", json=SESSION)
            assert res.status_code == 503 and "memory budget" in res.json()["detail"]
            assert int(res.headers["retry-after"]) > 0
            # nothing was evicted to make room: the stream that filled it is whole
            assert live.xlen("frames:{filler}") >= 15
            live.delete("frames:{filler}")
            assert (await http.post("/api/sessions", json=SESSION)).status_code == 201
        live.close()


async def test_every_page_has_security_headers_and_unknown_hosts_are_refused(redis_server: RedisServer) -> None:
    async with client(redis_server.url) as (http, _app):
        for path in ("/", "/join/some-token", "/static/app.js", "/static/style.css", "/api/join/x", "/nope",
                     "/healthz"):  # fmt: skip
            res = await http.get(path)
            csp = res.headers.get("content-security-policy", "")
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
            assert res.headers["x-content-type-options"] == "nosniff", path
            assert res.headers["referrer-policy"] == "no-referrer", path
            assert res.headers["x-frame-options"] == "DENY", path
        root = await http.get("/")
        assert root.status_code == 200 and "feqa ingest" in root.text and "/join/" in root.text
        for docs in ("/docs", "/redoc", "/openapi.json"):
            assert (await http.get(docs)).status_code == 404
        evil = await http.get("/", headers={"Host": "evil.example"})
        assert evil.status_code == 400 and "Host" in evil.json()["detail"]
        assert (await http.get("/", headers={"Host": "localhost:8080"})).status_code == 200
    async with client(redis_server.url, api_docs=True, public_url="https://clinic.example/feqa") as (http, _app):
        schema = await http.get("/openapi.json")
        assert schema.status_code == 200 and "/api/sessions" in schema.json()["paths"]
        assert (await http.get("/docs")).status_code == 404  # never the CDN-loaded UI
        assert (await http.get("/", headers={"Host": "clinic.example"})).status_code == 200


async def test_unknown_hosts_cannot_open_the_coaching_socket(redis_server: RedisServer, unused_tcp_port: int) -> None:
    from tests.integration.test_ingest_webrtc import create_and_join, ingest_settings, serve

    async def upgrade(path: str, host: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", unused_tcp_port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
        # closed here and waited for, so no half-closed socket is left for the server's shutdown to deal with
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 5)
        return status

    settings = ingest_settings(redis_server.url, unused_tcp_port)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, headers=SERVICE_HEADERS) as http:
        s = await create_and_join(http)
        path = f"/api/sessions/{s['sid']}/coach?key={s['key']}"
        assert b" 101 " in await upgrade(path, f"127.0.0.1:{unused_tcp_port}")  # the page's own socket opens
        assert b" 403 " in await upgrade(path, "evil.example")  # the same socket from another site's name: refused
