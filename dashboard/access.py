"""Who may call what: FastAPI dependencies for the logged-in caller, roles, CSRF, and clinic-scoped records.

- Every route but the login page depends on :func:`api_caller` or :func:`page_caller`: API calls without a valid
  login get 401, pages redirect to ``/login``.
- Unsafe methods (POST, PUT, PATCH, DELETE) also depend on :func:`csrf_caller`: the login's CSRF token must come back
  in the ``X-CSRF-Token`` header or a ``csrf_token`` form field, and a cross-site ``Origin`` is refused.
- A clinician reaches a patient or session only of their own clinic (:func:`patient_for` / :func:`session_for`);
  another clinic's record answers 404 exactly like a missing one, so ids cannot be probed.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session as DbSession

from dashboard.logins import COOKIE, Caller, LoginRejected, check_login, csrf_matches
from dashboard.state import DashboardState
from dashboard.tables import Patient, Session

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class NotLoggedIn(Exception):
    """A page was asked for without a valid login: the app redirects to the login page with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def get_state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dash
    return state


State = Annotated[DashboardState, Depends(get_state)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def resolve_caller(state: DashboardState, token: str | None, ip: str, user_agent: str, *, touch: bool = True) -> Caller:
    """The caller for a cookie token, or :class:`LoginRejected`; an idle or expired login is deleted."""
    s = state.settings
    rejected: LoginRejected | None = None
    with state.db.session() as db:
        try:
            return check_login(
                db, token, idle_s=s.idle_logout_s, max_s=s.max_login_s, ip=ip, user_agent=user_agent, touch=touch
            )
        except LoginRejected as exc:
            rejected = exc
    raise rejected


def _caller(request: Request, state: DashboardState) -> Caller:
    return resolve_caller(state, request.cookies.get(COOKIE), client_ip(request), request.headers.get("user-agent", ""))


def api_caller(request: Request, state: State) -> Caller:
    try:
        return _caller(request, state)
    except LoginRejected as exc:
        raise HTTPException(401, str(exc)) from None


def page_caller(request: Request, state: State) -> Caller:
    try:
        return _caller(request, state)
    except LoginRejected as exc:
        raise NotLoggedIn(str(exc)) from None


ApiCaller = Annotated[Caller, Depends(api_caller)]
PageCaller = Annotated[Caller, Depends(page_caller)]


def same_origin(request_host: str | None, origin: str | None) -> bool:
    """Whether an ``Origin`` header names the host the request was sent to (no header: not a browser, allowed)."""
    if origin is None:
        return True
    if not request_host:
        return False
    return urlsplit(origin).netloc.lower() == request_host.lower()


async def csrf_caller(request: Request, caller: ApiCaller) -> Caller:
    """The caller of an unsafe request whose CSRF token and origin check out (403 otherwise)."""
    if request.method in UNSAFE:
        if not same_origin(request.headers.get("host"), request.headers.get("origin")):
            raise HTTPException(403, "cross-site request refused")
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            value = (await request.form()).get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
        if not csrf_matches(caller.csrf, given):
            raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")
    return caller


CsrfCaller = Annotated[Caller, Depends(csrf_caller)]


def require_admin(caller: CsrfCaller) -> Caller:
    if not caller.admin:
        raise HTTPException(403, "only an admin may do this")
    return caller


def admin_viewer(caller: ApiCaller) -> Caller:
    if not caller.admin:
        raise HTTPException(403, "only an admin may see this")
    return caller


AdminCaller = Annotated[Caller, Depends(require_admin)]
AdminViewer = Annotated[Caller, Depends(admin_viewer)]


DB_IDS = range(-(2**63), 2**63)  # what an id column holds; a bigger number is no record (and no database error)


class Denied(HTTPException):
    """A record the caller may not see (or that does not exist): answered 404, and written to the audit log as a
    refused access attempt by the app's handler (the request's own transaction is rolled back)."""

    def __init__(self, caller: Caller, target_type: str, target_id: int) -> None:
        super().__init__(404, f"no {target_type} {target_id}")
        self.caller = caller
        self.target_type = target_type
        self.target_id = target_id


def patient_for(db: DbSession, caller: Caller, patient_id: int) -> Patient:
    """The patient if it belongs to the caller's clinic; 404 otherwise (also for another clinic's patient)."""
    patient = db.get(Patient, patient_id) if patient_id in DB_IDS else None
    if patient is None or caller.clinic_id is None or patient.clinic_id != caller.clinic_id:
        raise Denied(caller, "patient", patient_id)
    return patient


def session_for(db: DbSession, caller: Caller, session_id: int) -> Session:
    """The session if its patient belongs to the caller's clinic; 404 otherwise."""
    row = db.get(Session, session_id) if session_id in DB_IDS else None
    if row is None or caller.clinic_id is None or row.clinic_id != caller.clinic_id:
        raise Denied(caller, "session", session_id)
    return row
