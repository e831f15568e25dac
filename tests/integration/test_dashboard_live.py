"""The live websocket on a real uvicorn server and a real Redis: backpressure with a deliberately slow client,
resume after a reconnect, origin and login checks, session access."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from common.bus import Bus
from dashboard.db import Database
from dashboard.tables import Patient, Session
from infra.redis_server import RedisServer
from tests.conftest import live_session
from tests.dashboard_kit import (
    free_port,
    login_cookie,
    make_accounts,
    publish_scores,
    running,
    score,
    serve,
    settings_for,
    sqlite_url,
)

pytestmark = pytest.mark.integration


def _session(url: str, clinic_id: int, sid: str) -> int:
    db = Database(url)
    with db.session() as s:
        patient = Patient(clinic_id=clinic_id, ref="pt-" + sid, display_name="Pat", mrn=sid, created_ts=1.0)
        s.add(patient)
        s.flush()
        row = Session(
            sid=sid,
            patient_id=patient.id,
            clinic_id=clinic_id,
            protocol="pfed5",
            consent_live_scoring=True,
            consent_recording=False,
            consent_research=False,
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


class SlowClient:
    """A websocket client on a blocking socket (websockets' sans-I/O protocol) that reads only when told to."""

    def __init__(self, base: str, cookie: str) -> None:
        self.base, self.cookie = base, cookie
        self.proto = ClientProtocol(parse_uri(base.replace("http://", "ws://") + "/ws"), max_size=None)
        self.sock = socket.socket()

    def open(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        host, port = self.base.rsplit("/", 1)[1].split(":")
        self.sock.connect((host, int(port)))
        request = self.proto.connect()
        request.headers["Cookie"] = self.cookie
        request.headers["Origin"] = self.base
        self.proto.send_request(request)
        self.sock.sendall(b"".join(self.proto.data_to_send()))
        while self.proto.handshake_exc is None and not self.proto.events_received():
            self.proto.receive_data(self.sock.recv(4096))
            if self.proto.state.name == "OPEN":
                break
        assert self.proto.state.name == "OPEN", self.proto.handshake_exc

    def send(self, body: dict[str, Any]) -> None:
        self.proto.send_text(json.dumps(body).encode())
        self.sock.sendall(b"".join(self.proto.data_to_send()))

    def read_until(self, last_id: str, timeout: float) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        self.sock.settimeout(timeout)
        while last_id not in _scores(items):
            self.proto.receive_data(self.sock.recv(1 << 16))
            for frame in self.proto.events_received():
                if isinstance(frame, Frame) and frame.opcode == Opcode.TEXT:
                    items.extend(json.loads(frame.data)["items"])
            self.sock.sendall(b"".join(self.proto.data_to_send()))
        return items


async def _refusal(ws_url: str, headers: dict[str, str]) -> int:
    """The close code a refused socket gets (or the HTTP status when refused during the handshake)."""
    try:
        ws = await connect(ws_url, additional_headers=headers)
    except InvalidStatus as exc:
        return int(exc.response.status_code)
    try:
        await asyncio.wait_for(ws.recv(), 5)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else -1
    return 0


async def _open(base: str, cookie: str, **kwargs: Any) -> ClientConnection:
    ws_url = base.replace("http://", "ws://") + "/ws"
    return await connect(ws_url, additional_headers={"Cookie": cookie, "Origin": base}, **kwargs)


async def _collect(ws: ClientConnection, items: list[dict[str, Any]], until: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"gave up with {len(items)} items")
        msg = json.loads(await asyncio.wait_for(ws.recv(), left))
        items.extend(msg["items"])


def _scores(items: list[dict[str, Any]]) -> list[str]:
    return [i["id"] for i in items if i["t"] == "score"]


async def test_slow_client_loses_oldest_and_never_blocks_others(
    redis_server: RedisServer, tmp_path: Path, bus: Bus, sid: str
) -> None:
    url = sqlite_url(tmp_path)
    ids = make_accounts(url)
    session_id = _session(url, ids.clinic_a, sid)
    await live_session(bus, sid)
    settings = settings_for(redis_server.url, url, ws_queue=64)
    async with running(settings, background=False) as (app, state), serve(app, free_port()) as base:
        cookie = await login_cookie(base, "alice")
        fast = await _open(base, cookie)
        # the slow client: a plain socket with a tiny receive buffer that reads nothing until the burst is over
        slow = SlowClient(base, cookie)
        await asyncio.to_thread(slow.open)
        await asyncio.to_thread(slow.send, {"op": "watch", "session": session_id})
        await fast.send(json.dumps({"op": "watch", "session": session_id}))
        await asyncio.sleep(0.5)
        big = {f"k_{i:03d}": 0.123456 for i in range(200)}  # ~5 kB per entry: the burst outgrows socket buffers
        n = 2400
        sent: list[str] = []
        started = time.monotonic()
        for start in range(0, n, 100):  # 800 entries/s: many sessions' worth, at a pace a live client keeps up with
            batch = [score(sid, last_seq=i, kinematics=big) for i in range(start, start + 100)]
            sent += await publish_scores(bus, batch)
            await asyncio.sleep(0.125)
        got_fast: list[dict[str, Any]] = []
        await _collect(fast, got_fast, lambda: len(_scores(got_fast)) >= n, timeout=60)
        fast_s = time.monotonic() - started
        assert _scores(got_fast) == sent  # every entry, in order, none twice
        # the slow client now reads what is left for it: the newest entries and a count of what it lost
        got_slow = await asyncio.to_thread(slow.read_until, sent[-1], 60.0)
        slow_ids = _scores(got_slow)
        dropped = max((i["n"] for i in got_slow if i["t"] == "dropped"), default=0)
        assert dropped > 0, "the slow client lost nothing: the test did not make it slow"
        assert slow_ids == sorted(slow_ids, key=lambda x: tuple(map(int, x.split("-"))))
        assert len(set(slow_ids)) == len(slow_ids) and set(slow_ids) <= set(sent)
        assert len(slow_ids) + dropped >= n
        assert state.hub.stats.read >= n
        await fast.close()
        slow.sock.close()
    print(f"fast client got {n} entries in {fast_s:.2f} s; slow client got {len(slow_ids)}, lost {dropped}")


async def test_reconnect_resumes_from_the_last_id(
    redis_server: RedisServer, tmp_path: Path, bus: Bus, sid: str
) -> None:
    url = sqlite_url(tmp_path)
    ids = make_accounts(url)
    session_id = _session(url, ids.clinic_a, sid)
    await live_session(bus, sid)
    async with (
        running(settings_for(redis_server.url, url), background=False) as (app, _state),
        serve(app, free_port()) as base,
    ):
        cookie = await login_cookie(base, "alice")
        early = await publish_scores(bus, [score(sid, last_seq=i) for i in range(5)])
        ws = await _open(base, cookie)
        await ws.send(json.dumps({"op": "watch", "session": session_id}))
        items: list[dict[str, Any]] = []
        await _collect(ws, items, lambda: len(_scores(items)) >= 5, timeout=10)
        assert _scores(items) == early  # a fresh watch gets the recent history
        more = await publish_scores(bus, [score(sid, last_seq=i) for i in range(5, 8)])
        await _collect(ws, items, lambda: len(_scores(items)) >= 8, timeout=10)
        last = _scores(items)[-1]
        assert last == more[-1]
        await ws.close()
        missed = await publish_scores(bus, [score(sid, last_seq=i) for i in range(8, 20)])
        ws = await _open(base, cookie)
        await ws.send(json.dumps({"op": "watch", "session": session_id, "after": {"score": last}}))
        again: list[dict[str, Any]] = []
        await _collect(ws, again, lambda: len(_scores(again)) >= len(missed), timeout=10)
        live = await publish_scores(bus, [score(sid, last_seq=20)])
        await _collect(ws, again, lambda: live[0] in _scores(again), timeout=10)
        assert _scores(again) == missed + live  # nothing twice, nothing lost
        # a malformed cursor or an unknown op gets an error note, not a crash
        await ws.send(json.dumps({"op": "fly", "session": session_id}))
        await ws.send("not json")
        notes: list[dict[str, Any]] = []
        await _collect(ws, notes, lambda: sum(1 for i in notes if i["t"] == "error") >= 2, timeout=10)
        await ws.close()


async def test_socket_refuses_foreign_origin_other_clinic_and_logged_out(
    redis_server: RedisServer, tmp_path: Path, bus: Bus, sid: str
) -> None:
    url = sqlite_url(tmp_path)
    ids = make_accounts(url)
    session_id = _session(url, ids.clinic_a, sid)
    await live_session(bus, sid)
    async with (
        running(settings_for(redis_server.url, url), background=False) as (app, _state),
        serve(app, free_port()) as base,
    ):
        alice = await login_cookie(base, "alice")
        bob = await login_cookie(base, "bob")
        ws_url = base.replace("http://", "ws://") + "/ws"
        for headers, code in (
            ({"Cookie": alice, "Origin": "https://evil.example"}, 4403),
            ({"Cookie": "feqa_session=forged", "Origin": base}, 4401),
            ({"Origin": base}, 4401),
        ):
            assert await _refusal(ws_url, headers) in (code, 403), headers
        ws = await _open(base, bob)
        await ws.send(json.dumps({"op": "watch", "session": session_id}))
        items: list[dict[str, Any]] = []
        await _collect(ws, items, lambda: any(i["t"] == "error" for i in items), timeout=10)
        assert "no session" in next(i for i in items if i["t"] == "error")["error"]
        assert not any(i["t"] == "watching" for i in items)
        await ws.close()
