"""The patient page's routes: what the link is for, joining (or resuming) with the link, the SDP offer, task
events, the end, and the coaching channel back to the page.

The join link is the page's only secret; joining returns a page key that every later call carries
(``X-Session-Key``). Opening the link again while its session is open resumes the session: the join answers with
a new page key and the repetitions already done, and the new page's offer takes the connection over from the old
one (same frame numbering, no end in between).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from common.liveness import LeaseTaken
from common.logs import session_logger
from common.protocols import get_protocol
from common.streams import FRAMES
from ingest.api import Sid, State, client_of
from ingest.coach import relay_coaching
from ingest.peer import IngestPeer
from ingest.sdp import OfferError, check_offer
from ingest.state import IngestState
from ingest.tokens import TokenError

log = logging.getLogger(__name__)

router = APIRouter()

Token = Annotated[str, PathParam(max_length=256, description="the join link's token")]
SessionKey = Annotated[str | None, Header(max_length=256)]


class JoinRequest(BaseModel):
    consent: bool


class TaskEvent(BaseModel):
    type: Literal["task_start", "task_end", "marker"]
    task: str = Field("", max_length=64)
    rep: int = Field(0, ge=0, le=1000)


class EndRequest(BaseModel):
    reason: Literal["hangup", "completed"] = "hangup"


def _limit_joins(state: IngestState, request: Request) -> None:
    state.limiter.hit("joins", client_of(request), state.settings.rate_joins_per_min, what="join attempts")


@router.get("/api/join/{token}")
async def join_info(token: Token, state: State, request: Request) -> dict[str, Any]:
    """What the page shows before consent (does not use the link)."""
    _limit_joins(state, request)
    sid, used = await state.tokens.peek(token)
    info = await state.store.get(sid)
    if info is None or info.ended:
        raise TokenError("this session is over; ask your clinician for a new link if you need another", 410)
    protocol = get_protocol(info.protocol)
    return {"protocol": protocol.name, "title": protocol.title, "consent": info.consent.as_dict(), "resume": used}


@router.post("/api/join/{token}")
async def join(token: Token, body: JoinRequest, state: State, request: Request) -> dict[str, Any]:
    _limit_joins(state, request)
    if not body.consent:
        raise HTTPException(400, "the patient must give consent before the session starts")
    joined = await state.join(token)
    sid = joined.access.sid
    if not joined.resumed:
        await state.sessions.update(sid, joined_ts=time.time())
    s = state.settings
    protocol = get_protocol(joined.access.protocol)
    ice: list[dict[str, Any]] = []
    if s.ice_servers:
        credential = s.turn_credential.get_secret_value() if s.turn_credential else None
        ice.append({"urls": list(s.ice_servers), "username": s.turn_username, "credential": credential})
    done = await state.done_reps(sid) if joined.resumed else []
    if joined.resumed:
        session_logger(log, sid).info("the patient link was opened again: resuming (%d repetitions done)", len(done))
    return {
        "sid": sid,
        "key": joined.key,
        "resumed": joined.resumed,
        "done": [[task, rep] for task, rep in done],
        "ice_servers": ice,
        "protocol": protocol.for_page(countdown_s=s.countdown_s, rest_s=s.rest_s, hold_s=s.hold_s, reps=s.reps),
    }


async def _offer_body(request: Request, limit: int) -> str:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit + 1024:
            raise HTTPException(413, f"the SDP offer is larger than the limit of {limit} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        raise OfferError("the offer must be JSON {sdp, type}") from None
    if not isinstance(body, dict):
        raise OfferError("the offer must be JSON {sdp, type}")
    return check_offer(body.get("sdp"), body.get("type"), limit)


@router.post("/api/sessions/{sid}/offer")
async def offer(sid: Sid, request: Request, state: State, x_session_key: SessionKey = None) -> dict[str, str]:
    access = await state.authorise(sid, x_session_key)
    sdp = await _offer_body(request, state.settings.max_sdp_bytes)
    async with state.offer_lock(sid):
        info = await state.store.get(sid)
        if info is None or info.ended:
            raise TokenError("this session is over", 410)
        current = state.registry.get(sid)
        if current is None and info.state != "created":
            raise TokenError(
                "this session is connected through another server; wait a few seconds and reload the page", 409
            )
        if current is None:
            state.registry.check_capacity()

        async def closed(p: IngestPeer) -> None:
            await state.registry.remove(p)

        peer = IngestPeer(sid, access.protocol, state.settings, state.bus, state.sessions, on_closed=closed,
                          counters=state.counters, pump=current.pump if current is not None else None)  # fmt: skip
        try:
            answer = await peer.answer(sdp)
            if current is None:
                await state.sessions.start(sid, access.protocol)
        except LeaseTaken as exc:  # another ingest took this session's offer first
            await peer.discard()
            raise TokenError(str(exc), 409) from None
        except BaseException:
            await peer.discard()  # the session stays as it was for a good offer
            raise
        if current is None:
            state.registry.add(peer)
        else:
            await current.detach(peer)
            state.registry.replace(current, peer)
        peer.start()
    session_logger(log, sid).info("answered offer%s", " (resumed)" if current is not None else "")
    return {"sdp": answer, "type": "answer"}


@router.post("/api/sessions/{sid}/events")
async def task_event(sid: Sid, body: TaskEvent, state: State, x_session_key: SessionKey = None) -> dict[str, Any]:
    access = await state.authorise(sid, x_session_key)
    protocol = get_protocol(access.protocol)
    if body.type != "marker":
        protocol.task(body.task)
    peer = state.registry.get(sid)
    if peer is not None:
        seq = peer.pump.last_seq
    else:  # the connection may be held by another ingest process: the newest frame in Redis names the moment
        info = await state.store.get(sid)
        if info is None or info.state != "live":
            raise HTTPException(409, "the session has no live connection")
        newest = await state.bus.latest(FRAMES, sid, 1)
        seq = newest[-1].message.seq if newest else -1
    event = await state.sessions.event(sid, protocol.name, body.type, task=body.task, rep=body.rep, seq=seq)
    return {"seq": seq, "ts": event.ts}


@router.post("/api/sessions/{sid}/end")
async def end(sid: Sid, body: EndRequest, state: State, x_session_key: SessionKey = None) -> dict[str, str]:
    await state.authorise(sid, x_session_key)
    peer = state.registry.get(sid)
    if peer is not None:
        await peer.close(body.reason)
        return {"state": "ended", "reason": peer.end_reason or body.reason}
    info = await state.store.get(sid)
    if info is None:
        raise HTTPException(404, "no such session")
    if info.state != "ended":  # served by another ingest, or joined but never connected: end it here
        await state.sessions.store.end(sid, body.reason)
        info = await state.store.require(sid)
    return {"state": info.state, "reason": info.end_reason}


@router.websocket("/api/sessions/{sid}/coach")
async def coach(websocket: WebSocket, sid: str, key: str = "") -> None:
    state: IngestState = websocket.app.state.ingest
    try:
        await state.authorise(sid, key)
    except TokenError as exc:
        await websocket.close(code=4403, reason=str(exc)[:100])
        return
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect):
        await relay_coaching(state.bus, sid, websocket.send_json, websocket.receive_text)
