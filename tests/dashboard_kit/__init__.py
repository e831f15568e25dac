"""Helpers the dashboard tests share: an app on a real Redis and a temp SQLite (or PostgreSQL), accounts, logins."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from common.bus import Bus
from common.messages import Score
from common.settings import CommonSettings
from dashboard.accounts import create_clinic, create_user
from dashboard.app import create_app
from dashboard.db import Database
from dashboard.settings import DashboardSettings
from dashboard.state import DashboardState

PASSWORD = "correct horse battery"
BASE = "https://dash.test"


@dataclass
class Accounts:
    clinic_a: int
    clinic_b: int


def make_accounts(db_url: str) -> Accounts:
    """Clinics A and B; clinicians alice (A) and bob (B); admin root (A). All with :data:`PASSWORD`."""
    db = Database(db_url)
    db.migrate()
    with db.session() as s:
        a = create_clinic(s, "Clinic A")
        b = create_clinic(s, "Clinic B")
        create_user(s, "alice", PASSWORD, "clinician", a, "Alice A")
        create_user(s, "bob", PASSWORD, "clinician", b, "Bob B")
        create_user(s, "root", PASSWORD, "admin", a, "Root")
        ids = Accounts(a.id, b.id)
    db.close()
    return ids


def settings_for(redis_url: str, db_url: str, **overrides: Any) -> DashboardSettings:
    values: dict[str, Any] = {"ingest_url": "http://127.0.0.1:9", "health_interval_s": 0.3, "instance": "test-dash"}
    values.update(overrides)
    return DashboardSettings(common=CommonSettings(redis_url=redis_url), database_url=db_url, **values)


@contextlib.asynccontextmanager
async def running(settings: DashboardSettings, **kwargs: Any) -> AsyncIterator[tuple[FastAPI, DashboardState]]:
    app = create_app(settings, **kwargs)
    async with app.router.lifespan_context(app):
        yield app, app.state.dash


@contextlib.asynccontextmanager
async def http_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=20) as http:
        yield http


async def login(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; return the login's CSRF token (set as the client's default header too)."""
    page = await http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None, page.text[:300]
    res = await http.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1)})
    assert res.status_code == 303 and res.headers["location"] == "/", (res.status_code, res.headers)
    me = await http.get("/api/me")
    assert me.status_code == 200, me.text
    csrf = str(me.json()["csrf"])
    http.headers["X-CSRF-Token"] = csrf
    return csrf


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dash.sqlite'}"


def score(
    sid: str,
    *,
    kind: str = "window",
    task: str = "smile",
    rep: int = 0,
    last_seq: int = 0,
    value: float | None = 1.5,
    protocol: str = "pfed5",
    ts: float | None = None,
    kinematics: dict[str, float] | None = None,
) -> Score:
    """A Score v2 as the scorer publishes it (withheld when ``value`` is None)."""
    return Score(
        sid=sid,
        ts=time.time() if ts is None else ts,
        kind=kind,
        protocol=protocol,
        task=task,
        rep=rep,
        first_seq=max(0, last_seq - 127),
        last_seq=last_seq,
        capture_ts=time.time(),
        score=value,
        raw=None if value is None else value + 0.1,
        scale="mds-updrs-3.2",
        scale_min=0.0,
        scale_max=4.0,
        model="" if value is None else "trampformer:pfed5/" + task,
        version="" if value is None else "v1",
        withheld="quality:face_fraction" if value is None else "",
        kinematics=kinematics if kinematics is not None else {"rom_mouth": 0.3, "asym_mouth": 0.1, "blink_rate": 12},
        quality={"face_fraction": 0.98},
    )


async def publish_scores(bus: Bus, scores: list[Score]) -> list[str]:
    from common.streams import SCORES

    return await bus.publish_many(SCORES, scores)


@contextlib.asynccontextmanager
async def serve(app: FastAPI, port: int) -> AsyncIterator[str]:
    """``app`` on a real uvicorn server on 127.0.0.1 (in this event loop)."""
    import asyncio

    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, ws="websockets-sansio", lifespan="off")
    server = uvicorn.Server(config)
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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def login_cookie(base_url: str, username: str, password: str = PASSWORD) -> str:
    """Log in over real HTTP; return the ``Cookie`` header value (read from Set-Cookie: the cookie is Secure)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        page = await http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        pre = re.search(r"feqa_login_csrf=([^;]+)", page.headers["set-cookie"])
        assert token is not None and pre is not None
        res = await http.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": token.group(1)},
            headers={"Cookie": f"feqa_login_csrf={pre.group(1)}"},
        )
        found = re.search(r"feqa_session=([^;]+)", res.headers.get("set-cookie", ""))
        assert res.status_code == 303 and found is not None, res.headers
        return f"feqa_session={found.group(1)}"
