"""HTTP and WebSocket routes: create a session, join it with a token, answer the SDP offer, task events, hangup,
and the coaching channel back to the patient page.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field

from common.liveness import LeaseTaken
from common.logs import session_logger
from common.messages import Consent as ConsentFlags
from common.protocols import get_protocol
from common.streams import FRAMES
from ingest.coach import relay_coaching
from ingest.peer import IngestPeer
from ingest.sdp import OfferError, check_offer
from ingest.sessions import SessionSpec
from ingest.state import IngestState
from ingest.tokens import TokenError

log = logging.getLogger(__name__)

router = APIRouter()


def get_state(request: Request) -> IngestState:
    state: IngestState = request.app.state.ingest
    return state


State = Annotated[IngestState, Depends(get_state)]


def require_api_key(state: State, x_api_key: Annotated[str | None, Header()] = None) -> None:
    expected = state.settings.api_key
    if expected is not None and x_api_key != expected.get_secret_value():
        raise HTTPException(401, "creating sessions needs a valid X-Api-Key header")


class Consent(BaseModel):
    """What the patient agreed to (common.messages.Consent); live scoring is on unless refused."""

    model_config = {"extra": "forbid"}

    live_scoring: bool = True
    recording: bool = False
    research: bool = False


class CreateSession(BaseModel):
    patient_id: str = Field(min_length=1, max_length=128)
    protocol: str
    consent: Consent = Field(default_factory=Consent)
    phantom: str = Field("", max_length=65_536, description="phantom.spec.PatientSpec JSON for synthetic patients")


class JoinRequest(BaseModel):
    consent: bool


class TaskEvent(BaseModel):
    type: Literal["task_start", "task_end", "marker"]
    task: str = Field("", max_length=64)
    rep: int = Field(0, ge=0, le=1000)


class EndRequest(BaseModel):
    reason: Literal["hangup", "completed"] = "hangup"


@router.post("/api/sessions", status_code=201, dependencies=[Depends(require_api_key)])
async def create_session(body: CreateSession, state: State) -> dict[str, Any]:
    protocol = get_protocol(body.protocol)
    consent = ConsentFlags(**body.consent.model_dump())
    spec = SessionSpec(body.patient_id, protocol.name, consent, state.settings.max_fps, "webrtc", body.phantom)
    sid = await state.sessions.create(spec)
    token, expires_at = await state.tokens.issue(sid)
    return {
        "sid": sid,
        "token": token,
        "join_url": f"{state.settings.join_base()}/join/{token}",
        "expires_at": expires_at,
    }


@router.get("/api/sessions/{sid}", dependencies=[Depends(require_api_key)])
async def session_info(sid: str, state: State) -> dict[str, Any]:
    info = await state.store.get(sid)
    if info is None:
        raise HTTPException(404, f"no session {sid}")
    return info.as_json()


@router.get("/api/join/{token}")
async def join_info(token: str, state: State) -> dict[str, Any]:
    """What the page shows before consent (does not use the token)."""
    sid = await state.tokens.peek(token)
    info = await state.store.get(sid)
    if info is None or info.ended:
        raise TokenError("this session is no longer open", 410)
    protocol = get_protocol(info.protocol)
    return {"protocol": protocol.name, "title": protocol.title, "consent": info.consent.as_dict()}


@router.post("/api/join/{token}")
async def join(token: str, body: JoinRequest, state: State) -> dict[str, Any]:
    if not body.consent:
        raise HTTPException(400, "the patient must give consent before the session starts")
    access, key = await state.join(token)
    await state.sessions.update(access.sid, joined_ts=time.time())
    s = state.settings
    protocol = get_protocol(access.protocol)
    ice: list[dict[str, Any]] = []
    if s.ice_servers:
        credential = s.turn_credential.get_secret_value() if s.turn_credential else None
        ice.append({"urls": list(s.ice_servers), "username": s.turn_username, "credential": credential})
    return {
        "sid": access.sid,
        "key": key,
        "ice_servers": ice,
        "protocol": protocol.for_page(countdown_s=s.countdown_s, rest_s=s.rest_s, hold_s=s.hold_s, reps=s.reps),
    }


@router.post("/api/sessions/{sid}/offer")
async def offer(
    sid: str, request: Request, state: State, x_session_key: Annotated[str | None, Header()] = None
) -> dict[str, str]:
    access = await state.authorise(sid, x_session_key)
    limit = state.settings.max_sdp_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + 1024:
        raise HTTPException(413, f"the SDP offer is larger than the limit of {limit} bytes")
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
    sdp = check_offer(body.get("sdp"), body.get("type"), limit)
    info = await state.store.get(sid)
    if state.registry.get(sid) is not None or info is None or info.state != "created":
        raise TokenError("this session already has (or had) a connection", 409)
    state.registry.check_capacity()

    async def closed(p: IngestPeer) -> None:
        await state.registry.remove(p)

    peer = IngestPeer(sid, access.protocol, state.settings, state.bus, state.sessions, on_closed=closed,
                      counters=state.counters)  # fmt: skip
    try:
        answer = await peer.answer(sdp)
    except BaseException:
        await peer.discard()  # the session stays open for a good offer
        raise
    try:
        await state.sessions.start(sid, access.protocol)
    except LeaseTaken as exc:  # another ingest took this session's offer first
        await peer.discard()
        raise TokenError(str(exc), 409) from None
    except BaseException:
        await peer.discard()
        raise
    state.registry.add(peer)
    session_logger(log, sid).info("answered offer")
    return {"sdp": answer, "type": "answer"}


@router.post("/api/sessions/{sid}/events")
async def task_event(
    sid: str, body: TaskEvent, state: State, x_session_key: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
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
async def end(
    sid: str, body: EndRequest, state: State, x_session_key: Annotated[str | None, Header()] = None
) -> dict[str, str]:
    await state.authorise(sid, x_session_key)
    peer = state.registry.get(sid)
    if peer is not None:
        await peer.close(body.reason)
        return {"state": "ended", "reason": peer.end_reason or body.reason}
    info = await state.store.get(sid)
    if info is None:
        raise HTTPException(404, f"no session {sid}")
    if info.state == "live":  # served by another ingest: end it here; that ingest's frames are refused from now on
        await state.sessions.store.end(sid, body.reason)
        info = await state.store.require(sid)
    return {"state": info.state, "reason": info.end_reason}


class StopRequest(BaseModel):
    reason: Literal["clinician"] = "clinician"


@router.post("/api/sessions/{sid}/stop", dependencies=[Depends(require_api_key)])
async def stop(sid: str, body: StopRequest, state: State) -> dict[str, str]:
    """A clinician ends the session (service credential): hang up its peer, or end it if nobody joined yet."""
    peer = state.registry.get(sid)
    if peer is not None:
        await peer.close(body.reason)
        return {"state": "ended", "reason": peer.end_reason or body.reason}
    info = await state.store.get(sid)
    if info is None:
        raise HTTPException(404, f"no session {sid}")
    if not info.ended:  # not joined yet, or served by another ingest
        await state.sessions.store.end(sid, body.reason)
        info = await state.store.require(sid)
    return {"state": info.state, "reason": info.end_reason}


@router.websocket("/api/sessions/{sid}/coach")
async def coach(websocket: WebSocket, sid: str, key: str = "") -> None:
    state: IngestState = websocket.app.state.ingest
    try:
        await state.authorise(sid, key)
    except TokenError as exc:
        await websocket.close(code=4403, reason=str(exc))
        return
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect):
        await relay_coaching(state.bus, sid, websocket.send_json, websocket.receive_text)
