"""Dashboard HTTP API on a real Redis and a SQLite file: auth on every route, clinic isolation, CSRF, logins,
ratings, exports and the audit log."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, WebSocketRoute

from common.bus import Bus
from dashboard.db import Database
from dashboard.tables import AuditEntry, Session
from infra.redis_server import RedisServer
from tests.dashboard_kit import BASE, http_client, login, make_accounts, running, settings_for, sqlite_url

pytestmark = pytest.mark.integration

PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/healthz")}  # healthz: container checks, no data


def all_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every route of the app with its full path, through included routers."""
    out: list[tuple[str, Any]] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out += all_routes(list(inner.routes), prefix + route.include_context.prefix)
        else:
            out.append((prefix + getattr(route, "path", ""), route))
    return out


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def _patient(http: httpx.AsyncClient, mrn: str = "A-1") -> int:
    res = await http.post("/api/patients", json={"display_name": "Ann Example", "mrn": mrn, "birth_year": 1950})
    assert res.status_code == 201, res.text
    return int(res.json()["id"])


def _session_row(url: str, patient_id: int, clinic_id: int, *, research: bool = False, sid: str = "sx1") -> int:
    db = Database(url)
    with db.session() as s:
        row = Session(
            sid=sid,
            patient_id=patient_id,
            clinic_id=clinic_id,
            protocol="pfed5",
            consent_live_scoring=True,
            consent_recording=False,
            consent_research=research,
            state="live",
            created_ts=1.0,
            started_ts=1.0,
            ended_ts=0.0,
            end_reason="",
            join_url="",
            join_expires_ts=0.0,
            note="",
        )
        s.add(row)
        s.flush()
        new_id = row.id
    db.close()
    return new_id


async def test_every_route_refuses_an_anonymous_caller(redis_server: RedisServer, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    make_accounts(url)
    async with running(settings_for(redis_server.url, url), background=False) as (app, _state):
        checked = 0
        async with http_client(app) as http:
            for path, route in all_routes(list(app.routes)):
                if isinstance(route, APIRoute):
                    for method in sorted(route.methods):
                        if (method, path) in PUBLIC:
                            continue
                        res = await http.request(method, _fill(path), json={})
                        checked += 1
                        if path.startswith("/api/") or method != "GET":
                            assert res.status_code == 401, (method, path, res.status_code)
                        else:
                            assert res.status_code == 303, (method, path, res.status_code)
                            assert res.headers["location"].startswith("/login")
                elif isinstance(route, WebSocketRoute):
                    from starlette.testclient import TestClient
                    from starlette.websockets import WebSocketDisconnect

                    with (
                        TestClient(app, base_url=BASE) as tc,
                        pytest.raises(WebSocketDisconnect) as closed,
                        tc.websocket_connect(path) as ws,
                    ):
                        ws.receive_text()
                    assert closed.value.code == 4401
                    checked += 1
                else:
                    assert isinstance(route, Mount) and path == "/static", route  # code and styles only, no data
        assert checked >= 25


async def test_clinicians_see_only_their_clinic(redis_server: RedisServer, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    ids = make_accounts(url)
    async with (
        running(settings_for(redis_server.url, url), background=False) as (app, _state),
        http_client(app) as alice,
        http_client(app) as bob,
    ):
        await login(alice, "alice")
        await login(bob, "bob")
        pid = await _patient(alice)
        sess = _session_row(url, pid, ids.clinic_a)
        assert (await alice.get(f"/api/patients/{pid}")).status_code == 200
        assert (await alice.get(f"/api/sessions/{sess}")).status_code == 200
        for path in (
            f"/api/patients/{pid}",
            f"/api/patients/{pid}/history.csv",
            f"/api/patients/{pid}/longitudinal?protocol=pfed5&task=smile",
            f"/api/sessions/{sess}",
            f"/api/sessions/{sess}/scores.csv",
            f"/api/sessions/{sess}/report.pdf",
            f"/api/sessions/{sess}/labels.csv",
        ):
            res = await bob.get(path)
            assert res.status_code == 404, (path, res.status_code)
        res = await bob.post(f"/api/sessions/{sess}/ratings", json={"task": "smile", "value": 1})
        assert res.status_code == 404
        res = await bob.post(f"/api/patients/{pid}/sessions", json={"protocol": "pfed5"})
        assert res.status_code == 404
        assert (await bob.get("/api/patients")).json() == []
        with Database(url).session() as s:
            refused = {(a.target_type, a.target_id) for a in s.query(AuditEntry) if a.outcome == "refused"}
        assert {("patient", str(pid)), ("session", str(sess))} <= refused  # the attempts are audited too
        assert (await bob.get("/api/sessions")).json() == []
        assert [p["id"] for p in (await alice.get("/api/patients")).json()] == [pid]
        # the same record number may exist in another clinic, never twice in one
        assert (await bob.post("/api/patients", json={"display_name": "Other", "mrn": "A-1"})).status_code == 201
        assert (await alice.post("/api/patients", json={"display_name": "Dup", "mrn": "A-1"})).status_code == 409
        # admin endpoints refuse clinicians
        assert (await alice.get("/api/admin/users")).status_code == 403
        assert (await alice.post("/api/admin/clinics", json={"name": "X"})).status_code == 403


async def test_csrf_and_origin_are_checked(redis_server: RedisServer, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    make_accounts(url)
    async with (
        running(settings_for(redis_server.url, url), background=False) as (app, _state),
        http_client(app) as http,
    ):
        csrf = await login(http, "alice")
        body = {"display_name": "Ann", "mrn": "A-9"}
        del http.headers["X-CSRF-Token"]
        assert (await http.post("/api/patients", json=body)).status_code == 403
        wrong = await http.post("/api/patients", json=body, headers={"X-CSRF-Token": csrf[:-2] + "xx"})
        assert wrong.status_code == 403
        foreign = await http.post(
            "/api/patients", json=body, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403 and "cross-site" in foreign.text
        ok = await http.post("/api/patients", json=body, headers={"X-CSRF-Token": csrf, "Origin": BASE})
        assert ok.status_code == 201
        # a form post carries the token as a field (logout)
        assert (await http.post("/logout", data={"csrf_token": "nope"})).status_code == 403
        out = await http.post("/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert (await http.get("/api/me")).status_code == 401
        # the login form itself needs its own token
        res = await http.post("/login", data={"username": "alice", "password": "x", "csrf_token": "forged"})
        assert res.status_code == 303 and "expired" in res.headers["location"]


async def test_login_cookie_idle_logout_and_lockout(redis_server: RedisServer, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    make_accounts(url)
    settings = settings_for(redis_server.url, url, idle_logout_s=1.0, login_attempts=3, lockout_s=60)
    async with running(settings, background=False) as (app, _state), http_client(app) as http:
        page = await http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        res = await http.post(
            "/login", data={"username": "alice", "password": "correct horse battery", "csrf_token": token.group(1)}
        )
        cookie = res.headers["set-cookie"].lower()
        assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
        assert (await http.get("/api/me")).status_code == 200
        await asyncio.sleep(1.3)
        idle = await http.get("/api/me")
        assert idle.status_code == 401 and "without activity" in idle.json()["detail"]
        async with http_client(app) as http:
            for _ in range(3):
                page = await http.get("/login")
                t = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
                assert t is not None
                bad = await http.post("/login", data={"username": "bob", "password": "wrong", "csrf_token": t.group(1)})
                assert "Wrong" in bad.headers["location"]
            # locked now: even the right password is refused for a while
            page = await http.get("/login")
            t = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert t is not None
            res = await http.post(
                "/login", data={"username": "bob", "password": "correct horse battery", "csrf_token": t.group(1)}
            )
            assert "Wrong" in res.headers["location"]


async def test_ratings_on_the_protocol_scale_and_labels_need_research_consent(
    redis_server: RedisServer, tmp_path: Path, bus: Bus
) -> None:
    url = sqlite_url(tmp_path)
    ids = make_accounts(url)
    async with (
        running(settings_for(redis_server.url, url), background=False) as (app, _state),
        http_client(app) as http,
    ):
        await login(http, "alice")
        pid = await _patient(http)
        plain = _session_row(url, pid, ids.clinic_a, sid="sr1")
        research = _session_row(url, pid, ids.clinic_a, research=True, sid="sr2")
        for bad, why in (
            ({"task": "smile", "value": 5}, "0-4"),
            ({"task": "smile", "value": 1.5}, "whole"),
            ({"task": "blow", "value": 1}, "no task"),
            ({"task": "smile", "value": "x"}, ""),
        ):
            res = await http.post(f"/api/sessions/{plain}/ratings", json=bad)
            assert res.status_code in (400, 422), (bad, res.text)
            assert why in res.text
        good = await http.post(f"/api/sessions/{plain}/ratings", json={"task": "smile", "value": 2, "note": "=1+1"})
        assert good.status_code == 201 and good.json()["by"] == "alice"
        refused = await http.get(f"/api/sessions/{plain}/labels.csv")
        assert refused.status_code == 403 and "research consent" in refused.text
        await http.post(f"/api/sessions/{research}/ratings", json={"task": "frown", "rep": 1, "value": 3})
        labels = await http.get(f"/api/sessions/{research}/labels.csv")
        assert labels.status_code == 200
        rows = list(csv.DictReader(io.StringIO(labels.text)))
        assert [(r["task"], r["rep"], r["label"]) for r in rows] == [("frown", "1", "3.0")]
        assert rows[0]["patient_ref"].startswith("pt-") and "Ann" not in labels.text
        scores = await http.get(f"/api/sessions/{plain}/scores.csv")
        assert scores.status_code == 200 and scores.text.startswith("session_sid,")
        detail = (await http.get(f"/api/sessions/{plain}")).json()
        assert detail["ratings"][0]["note"] == "=1+1" and detail["ratings"][0]["value"] == 2


async def test_views_and_exports_are_audited(redis_server: RedisServer, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    ids = make_accounts(url)
    async with (
        running(settings_for(redis_server.url, url), background=False) as (app, _state),
        http_client(app) as http,
    ):
        await login(http, "alice")
        pid = await _patient(http)
        sess = _session_row(url, pid, ids.clinic_a)
        await http.get(f"/api/patients/{pid}")
        await http.get(f"/api/sessions/{sess}")
        await http.get(f"/api/sessions/{sess}/scores.csv")
        await http.get(f"/api/sessions/{sess}/report.pdf")
        await http.get(f"/api/patients/{pid}/history.csv")
    db = Database(url)
    with db.session() as s:
        rows = [(a.username, a.action, a.target_type, a.target_id, a.ip) for a in s.query(AuditEntry)]
    actions = {(r[1], r[2], r[3]) for r in rows if r[0] == "alice"}
    for expected in (
        ("view_patient", "patient", str(pid)),
        ("view_session", "session", str(sess)),
        ("export_csv", "session", str(sess)),
        ("export_pdf", "session", str(sess)),
        ("export_history_csv", "patient", str(pid)),
        ("login", "user", "1"),
    ):
        assert expected in actions, (expected, actions)
    assert all(r[4] for r in rows if r[1] != "login")  # where from: the client address
