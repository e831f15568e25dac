"""The service API (credential: the ``X-Api-Key`` service key, see ingest.auth): create a session and get its
patient link, read a session, stop one. The patient page's own routes are in ingest.page_api.

Shared request pieces live here too: the state dependency, the service-key check, the session-id path rule (letters,
digits, ``_`` and ``-``, at most 64), the caller's address for rate limits, and the Redis memory admission check
(no new session while the live Redis is near its memory budget).
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi import Path as PathParam
from pydantic import AfterValidator, BaseModel, Field

from common.messages import Consent as ConsentFlags
from common.protocols import get_protocol
from ingest.phantom_spec import checked_phantom
from ingest.sessions import SessionSpec
from ingest.state import IngestState

log = logging.getLogger(__name__)

router = APIRouter()

SID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
PATIENT_ID_RULE = "letters, digits, '.', '_' and '-' only, starting with a letter or digit, at most 64"
_PATIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
Sid = Annotated[str, PathParam(pattern=SID_PATTERN, description="session id")]


def check_patient_id(value: str) -> str:
    """A pseudonymous patient reference, or ValueError with the rule (never the value)."""
    if not _PATIENT_ID.fullmatch(value):
        raise ValueError(f"a patient id has {PATIENT_ID_RULE}")
    return value


PatientId = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_patient_id)]


def get_state(request: Request) -> IngestState:
    state: IngestState = request.app.state.ingest
    return state


State = Annotated[IngestState, Depends(get_state)]


def client_of(request: Request) -> str:
    """The caller's address (rate limits are per address)."""
    return request.client.host if request.client else "unknown"


def require_service_key(state: State, x_api_key: Annotated[str | None, Header(max_length=512)] = None) -> None:
    if not state.service_key.matches(x_api_key):
        raise HTTPException(
            401,
            "this call needs the service key in the X-Api-Key header (feqa up stores it in .feqa/ingest.key)",
            headers={"WWW-Authenticate": "X-Api-Key"},
        )


class StoreFull(HTTPException):
    def __init__(self) -> None:
        super().__init__(503, "the server is at its memory budget; try again in a minute", {"Retry-After": "30"})


async def admit_new_session(state: IngestState) -> None:
    """Refuse a new session (503) while Redis uses more than ``redis_memory_admit`` of its maxmemory."""
    info = await state.bus.run("memory check", lambda r: r.info("memory"))
    used, cap = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    if cap and used > state.settings.redis_memory_admit * cap:
        log.warning("refusing a new session: redis uses %d of %d bytes", used, cap)
        raise StoreFull()


class Consent(BaseModel):
    """What the patient agreed to (common.messages.Consent); live scoring is on unless refused."""

    model_config = {"extra": "forbid"}

    live_scoring: bool = True
    recording: bool = False
    research: bool = False


class CreateSession(BaseModel):
    model_config = {"extra": "forbid"}

    patient_id: PatientId
    protocol: str = Field(max_length=32)
    consent: Consent = Field(default_factory=Consent)
    phantom: str = Field("", max_length=4096, description="phantom.spec.PatientSpec JSON (demo/test deployments)")


class StopRequest(BaseModel):
    reason: Literal["clinician"] = "clinician"


@router.post("/api/sessions", status_code=201, dependencies=[Depends(require_service_key)])
async def create_session(body: CreateSession, state: State, request: Request) -> dict[str, Any]:
    s = state.settings
    state.limiter.hit("sessions", client_of(request), s.rate_sessions_per_min, what="new sessions")
    protocol = get_protocol(body.protocol)
    phantom = ""
    if body.phantom:
        phantom = checked_phantom(body.phantom, protocol.name, s.max_fps, allowed=s.allow_phantom,
                                  max_reps=s.phantom_max_reps, max_s=s.phantom_max_s)  # fmt: skip
    await admit_new_session(state)
    consent = ConsentFlags(**body.consent.model_dump())
    spec = SessionSpec(body.patient_id, protocol.name, consent, s.max_fps, "webrtc", phantom)
    sid = await state.sessions.create(spec)
    token, expires_at = await state.tokens.issue(sid)
    return {"sid": sid, "token": token, "join_url": f"{s.join_base()}/join/{token}", "expires_at": expires_at}


@router.get("/api/sessions/{sid}", dependencies=[Depends(require_service_key)])
async def session_info(sid: Sid, state: State) -> dict[str, Any]:
    info = await state.store.get(sid)
    if info is None:
        raise HTTPException(404, "no such session")
    return info.as_json()


@router.post("/api/sessions/{sid}/stop", dependencies=[Depends(require_service_key)])
async def stop(sid: Sid, body: StopRequest, state: State) -> dict[str, str]:
    """A clinician ends the session (service credential): hang up its peer, or end it if nobody joined yet."""
    peer = state.registry.get(sid)
    if peer is not None:
        await peer.close(body.reason)
        return {"state": "ended", "reason": peer.end_reason or body.reason}
    info = await state.store.get(sid)
    if info is None:
        raise HTTPException(404, "no such session")
    if not info.ended:  # not joined yet, or served by another ingest
        await state.sessions.store.end(sid, body.reason)
        info = await state.store.require(sid)
    return {"state": info.state, "reason": info.end_reason}
