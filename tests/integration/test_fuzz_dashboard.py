"""Fuzzing the dashboard (hypothesis) on a real Redis, a SQLite file and a real ingest on loopback: the login form,
every JSON and page route with generated path ids, query strings and bodies, and the live websocket's messages.
Every answer is a success or a clear 4xx (JSON with a ``detail``, or a redirect to the login page); never a 5xx,
never a hung request, and the app serves normally afterwards. ``pytest --long -m fuzz``: 10,000 inputs a target."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import websockets
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import strategies as st

from common.settings import CommonSettings
from infra.redis_server import RedisServer
from ingest.settings import IngestSettings
from tests.dashboard_kit import (
    BASE,
    PASSWORD,
    free_port,
    http_client,
    login,
    login_cookie,
    make_accounts,
    running,
    serve,
    settings_for,
    sqlite_url,
)
from tests.fuzz_kit import examples, json_values, run_property
from tests.integration.test_dashboard_api import all_routes
from tests.integration.test_ingest_webrtc import serve as serve_ingest

pytestmark = [pytest.mark.integration, pytest.mark.fuzz, pytest.mark.timeout(3600)]

KEY = "fuzz-service-key-0123456789abcdef"
SKIP = {("POST", "/logout")}  # would end the fuzzing login (tested on its own below)
ODD_IDS = ["1.5", "1e400", "0x1", "..", "%00", "%2e%2e", "1;drop", " 1"]
ids = st.one_of(st.integers(-5, 40), st.integers(), st.sampled_from([2**63, -(2**63) - 1, 10**30]),
                st.text(max_size=12), st.sampled_from(ODD_IDS))  # fmt: skip
query_values = st.one_of(st.text(max_size=40), st.integers().map(str), st.sampled_from(
    ["pfed5", "smile", "neuroface", "2026-01-01", "2026-13-40", "-1", "1e400", "", "x" * 300]))  # fmt: skip


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def stack(own_redis: RedisServer, tmp_path: Path) -> AsyncIterator[tuple[FastAPI, str]]:
    """The dashboard (in process) with a real ingest it creates sessions on."""
    url = sqlite_url(tmp_path)
    make_accounts(url)
    ingest = IngestSettings(common=CommonSettings(redis_url=own_redis.url), port=free_port(), api_key=KEY,
                            ice_host_addresses=["127.0.0.1"], max_sessions=100_000)  # fmt: skip
    async with serve_ingest(ingest) as ingest_url:
        settings = settings_for(own_redis.url, url, ingest_url=ingest_url, ingest_api_key=KEY)
        async with running(settings, background=False) as (app, _state):
            yield app, url


def route_table(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    out = []
    for path, route in all_routes(list(app.routes)):
        if isinstance(route, APIRoute):
            out += [(m, path, route) for m in sorted(route.methods) if (m, path) not in SKIP]
    return out


def body_fields(route: APIRoute) -> list[str]:
    field = route.body_field
    model = getattr(field, "type_", None) if field is not None else None
    fields = getattr(model, "model_fields", None)
    return sorted(fields) if fields else []


def query_names(route: APIRoute) -> list[str]:
    return [p.alias for p in route.dependant.query_params]


@st.composite
def requests(draw: st.DrawFn, table: list[tuple[str, str, APIRoute]]) -> dict[str, Any]:
    method, path, route = draw(st.sampled_from(table))
    filled = re.sub(r"\{[^}]+\}", lambda _m: quote(str(draw(ids)), safe=""), path)
    names = query_names(route)
    params = draw(st.dictionaries(st.sampled_from(names) if names else st.text(max_size=6), query_values, max_size=4))
    shaped = body_fields(route)
    body: Any = draw(st.one_of(
        json_values,
        st.fixed_dictionaries({}, optional={n: json_values for n in shaped}) if shaped else json_values,
    ))  # fmt: skip
    kind = draw(st.sampled_from(["json", "json", "form", "raw"]))
    return {"method": method, "path": filled, "params": params, "body": body, "kind": kind,
            "raw": draw(st.binary(max_size=64))}  # fmt: skip


def clear(res: httpx.Response, what: str) -> None:
    assert res.status_code < 500, f"{what} -> {res.status_code}: {res.text[:300]}"
    if 400 <= res.status_code < 500 and res.headers.get("content-type", "").startswith("application/json"):
        assert "detail" in res.json(), f"{what} -> {res.status_code} without a detail: {res.text[:200]}"
    if res.status_code in (302, 303, 307):  # to the login page, or within this site (a trailing slash dropped)
        assert res.headers["location"].startswith(("/", BASE + "/")), res.headers["location"]


async def test_every_route_answers_generated_requests_with_a_clear_status(
    stack: tuple[FastAPI, str], long_run: bool
) -> None:
    app, _ = stack
    table = route_table(app)
    assert len(table) >= 25
    statuses: dict[int, int] = {}
    async with http_client(app) as http, http_client(app) as anon:
        await login(http, "root")  # an admin reaches every route, the admin ones included
        await http.post("/api/patients", json={"display_name": "Fuzz", "mrn": "F1"})  # something to find

        async def one(req: dict[str, Any]) -> None:
            client = anon if req["raw"][:1] == b"\x00" else http  # some requests without a login
            kwargs: dict[str, Any] = {"params": req["params"]}
            if req["method"] != "GET":
                if req["kind"] == "json":
                    kwargs["content"] = json.dumps(req["body"], allow_nan=True)
                    kwargs["headers"] = {"content-type": "application/json"}
                elif req["kind"] == "form" and isinstance(req["body"], dict):
                    kwargs["data"] = {str(k): str(v) for k, v in req["body"].items()}
                else:
                    kwargs["content"] = req["raw"]
                    kwargs["headers"] = {"content-type": "application/json"}
            res = await client.request(req["method"], req["path"], **kwargs)
            statuses[res.status_code] = statuses.get(res.status_code, 0) + 1
            clear(res, f"{req['method']} {req['path']} {req['params']}")

        ran = await run_property(requests(table), one)
        assert ran >= examples(long_run)
        assert (await http.get("/api/me")).status_code == 200  # still logged in and serving
    assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses), statuses


async def test_the_login_form_answers_generated_input_with_a_redirect(stack: tuple[FastAPI, str]) -> None:
    app, _ = stack
    values = st.text(max_size=80) | st.sampled_from(["root", PASSWORD, "a" * 2000])
    fields = st.dictionaries(st.sampled_from(["username", "password", "csrf_token", "x"]), values, max_size=4)

    async with http_client(app) as http:
        page = await http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None

        async def one(form: dict[str, str]) -> None:
            if form.get("csrf_token") == "root":
                form["csrf_token"] = token.group(1)  # sometimes the form's real token
            res = await http.post("/login", data=form)
            clear(res, f"login {list(form)}")
            if form.get("username") == "root" and form.get("password") == PASSWORD:
                return
            assert res.status_code != 303 or res.headers["location"].startswith("/login"), "a login got in"

        await run_property(fields, one)
        assert (await http.post("/logout")).status_code in (303, 401, 403)


async def test_the_websocket_answers_generated_messages_and_stays_open(stack: tuple[FastAPI, str]) -> None:
    app, _ = stack
    port = free_port()
    messages = st.one_of(
        st.text(max_size=60),
        json_values.map(json.dumps),
        st.fixed_dictionaries({"op": st.sampled_from(["watch", "unwatch", "nope"]) | json_values},
                              optional={"session": ids | json_values, "after": json_values | st.dictionaries(
                                  st.sampled_from(["score", "event", "coach", "x"]),
                                  st.sampled_from(["0-0", "$", "1-1", "99999999999999999999-0", "-", "abc", ""]))})
        .map(lambda d: json.dumps(d, allow_nan=True)),
        st.sampled_from(['{"op": "watch", "session": 1e400}', '{"op": "watch", "session": 1}',
                         '{"op": "watch", "session": 100000000000000000000}', "[" * 5000]),
        st.binary(max_size=40),
    )  # fmt: skip
    async with serve(app, port) as base:
        cookie = await login_cookie(base, "root")
        headers = {"Cookie": cookie, "Origin": base}
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", additional_headers=headers) as ws:
            answers: list[dict[str, Any]] = []

            async def one(message: str | bytes) -> None:
                await ws.send(message)
                await ws.send('{"op": "sentinel", "session": 0}')  # answered after the message before it
                while True:
                    frame = json.loads(await ws.recv())
                    items = frame.get("items", [frame]) if isinstance(frame, dict) else []
                    notes = [json.loads(i) if isinstance(i, str) else i for i in items]
                    answers.extend(n for n in notes if isinstance(n, dict))
                    if any(isinstance(n, dict) and "sentinel" in str(n.get("error", "")) for n in notes):
                        return

            await run_property(messages, one)
            assert any(a.get("t") == "error" for a in answers)
            # still open and serving: a real watch of a session that does not exist is a clear error
            await ws.send('{"op": "watch", "session": 424242}')
            got = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert "error" in json.dumps(got), got


async def test_the_inputs_fuzzing_found_get_clear_answers(stack: tuple[FastAPI, str]) -> None:
    """Each of these once answered 500 or closed the live socket (found by the targets above)."""
    app, _ = stack
    async with http_client(app) as http:
        await login(http, "root")
        for path in ("/api/sessions/9223372036854775808", "/api/patients/-9223372036854775809",
                     "/api/patients/100000000000000000000/longitudinal?protocol=pfed5&task=smile"):  # fmt: skip
            res = await http.get(path)
            assert res.status_code == 404 and "detail" in res.json(), (path, res.status_code)
        res = await http.post("/api/admin/users", json={"username": "newbie", "clinic_id": 2**64})
        assert res.status_code == 404 and "no clinic" in res.json()["detail"]
        res = await http.post(
            "/api/patients/1/sessions", content=b"Infinity", headers={"content-type": "application/json"}
        )
        assert res.status_code == 422 and res.json()["detail"][0]["loc"] == ["body"]  # the input is not echoed
    port = free_port()
    async with serve(app, port) as base:
        cookie = await login_cookie(base, "root")
        headers = {"Cookie": cookie, "Origin": base}
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", additional_headers=headers) as ws:
            for message in ('{"op": "watch", "session": 1e400}', b"\x00binary", '{"op": "watch", "session": 1e30}',
                            "[" * 5000):  # fmt: skip
                await ws.send(message)
                got = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert got["t"] == "batch" and got["items"][0]["t"] == "error", (message, got)
