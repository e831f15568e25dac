"""The live websocket ``/ws``: one per page, multiplexing the sessions it watches and the health table.

The caller must be logged in (session cookie) and the ``Origin`` must be this site; otherwise the socket is closed
before it is accepted (4401 / 4403). Client messages:

- ``{"op": "watch", "session": <id>, "after": {"score": <stream id>, "event": ..., "coach": ...}}``: start
  following a session of the caller's clinic, first replaying what came after the given ids (all recent entries
  for a feed without one), then live; audited as ``view_session_live``.
- ``{"op": "unwatch", "session": <id>}``.

Server messages are ``{"t": "batch", "items": [...]}`` frames whose items are ``score`` / ``event`` / ``coach``
entries (with their stream ``id``), ``health`` tables, ``dropped`` counts (entries this client lost because it fell
behind), ``gap`` notes, ``watching`` acknowledgements and ``error`` notes. The login is checked again every 30 s; a
logged-out or idle-expired login closes the socket (4401).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from dashboard import audit
from dashboard.access import Denied, resolve_caller, same_origin, session_for
from dashboard.hub import Client, Item, pump
from dashboard.logins import COOKIE, Caller, LoginRejected
from dashboard.state import DashboardState

log = logging.getLogger(__name__)

router = APIRouter()
RECHECK_S = 30.0


@router.websocket("/ws")
async def live_socket(websocket: WebSocket) -> None:
    state: DashboardState = websocket.app.state.dash
    if not same_origin(websocket.headers.get("host"), websocket.headers.get("origin")):
        await websocket.close(code=4403, reason="cross-site websocket refused")
        return
    token = websocket.cookies.get(COOKIE)
    ip = websocket.client.host if websocket.client else ""
    agent = websocket.headers.get("user-agent", "")
    try:
        caller = await run_in_threadpool(resolve_caller, state, token, ip, agent)
    except LoginRejected as exc:
        await websocket.close(code=4401, reason=str(exc)[:120])
        return
    await websocket.accept()
    client = Client(state.settings.ws_queue, name=caller.username)
    state.hub.add(client)
    if state.health.latest:  # the page shows the pipeline's health at once, not after the next round
        client.put(Item("", "", json.dumps({"t": "health", "d": state.health.table()}, default=str)))
    sender = asyncio.ensure_future(pump(client, websocket.send_text, state.hub))
    checker = asyncio.ensure_future(_recheck(websocket, state, token, ip, agent))
    try:
        await _receive(websocket, state, caller, client)
    except WebSocketDisconnect:
        pass
    finally:
        state.hub.remove(client)
        for task in (sender, checker):
            task.cancel()
        for task in (sender, checker):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _recheck(websocket: WebSocket, state: DashboardState, token: str | None, ip: str, agent: str) -> None:
    while True:
        await asyncio.sleep(RECHECK_S)
        try:
            await run_in_threadpool(resolve_caller, state, token, ip, agent, touch=False)
        except LoginRejected as exc:
            await websocket.close(code=4401, reason=str(exc)[:120])
            return


def _note(client: Client, **body: Any) -> None:
    client.put(Item("", "", json.dumps(body)))


async def _receive(websocket: WebSocket, state: DashboardState, caller: Caller, client: Client) -> None:
    watched: dict[int, str] = {}
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(int(message.get("code") or 1000))
        text = message.get("text")
        if text is None:  # a binary frame
            _note(client, t="error", error="messages are JSON text frames")
            continue
        try:
            msg = json.loads(text)
            op = msg["op"]
            session_id = int(msg["session"])
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError):  # 1e400, "[[[[..." as well
            _note(client, t="error", error='messages are {"op": "watch"|"unwatch", "session": <id>}')
            continue
        if op == "unwatch":
            sid = watched.pop(session_id, None)
            if sid:
                state.hub.unwatch(client, sid)
            continue
        if op != "watch":
            _note(client, t="error", error=f"unknown op {op!r}")
            continue
        if session_id in watched:
            continue
        if len(watched) >= state.settings.max_watch:
            _note(client, t="error", error=f"a page may watch at most {state.settings.max_watch} sessions")
            continue
        after = msg.get("after") or {}
        if not isinstance(after, dict) or not all(isinstance(v, str) for v in after.values()):
            _note(client, t="error", error="after must map feed names to stream ids")
            continue
        try:
            sid = await run_in_threadpool(_authorise, state, caller, session_id)
        except HTTPException as exc:
            _note(client, t="error", session=session_id, error=str(exc.detail))
            continue
        watched[session_id] = sid
        _note(client, t="watching", session=session_id, sid=sid)
        try:
            await state.hub.watch(client, sid, {k: v for k, v in after.items() if v})
        except ValueError:
            _note(client, t="error", session=session_id, error="a cursor is not a stream id")


def _authorise(state: DashboardState, caller: Caller, session_id: int) -> str:
    try:
        with state.db.session() as db:
            row = session_for(db, caller, session_id)
            audit.record(db, caller, "view_session_live", "session", row.id)
            return row.sid
    except Denied:
        with state.db.session() as db:
            audit.record(db, caller, "view_session_live", "session", session_id, outcome="refused")
        raise
