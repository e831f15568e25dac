"""Logging in and out: the login page (the only page open without a login), the form post, logout and ``/api/me``.

The login form carries a CSRF token that must match a short-lived cookie set with the page (double submit), so a
foreign site cannot log a browser into an account of its choosing. A successful login sets the session cookie:
``HttpOnly``, ``SameSite=Strict``, ``Secure`` unless the deployment turns that off, path ``/``.
"""

from __future__ import annotations

import html
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from common.protocols import PROTOCOLS
from dashboard import audit
from dashboard.access import ApiCaller, CsrfCaller, State, client_ip
from dashboard.accounts import authenticate
from dashboard.logins import COOKIE, close_login, csrf_matches, open_login

router = APIRouter()

LOGIN_CSRF_COOKIE = "feqa_login_csrf"
LOGIN_PAGE = Path(__file__).with_name("static") / "login.html"


@router.get("/login", include_in_schema=False)
def login_page(state: State, reason: str = "", error: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    message = error or reason
    text = LOGIN_PAGE.read_text().replace("__CSRF__", token).replace("__MESSAGE__", html.escape(message[:200]))
    response = HTMLResponse(text)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=1800,
        httponly=True,
        samesite="strict",
        secure=state.settings.cookie_secure,
        path="/login",
    )
    return response


@router.post("/login", include_in_schema=False)
async def login(
    request: Request,
    state: State,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> RedirectResponse:
    ip, agent = client_ip(request), request.headers.get("user-agent", "")
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf_token):
        return RedirectResponse("/login?error=The+login+form+expired%3B+please+try+again.", status_code=303)
    s = state.settings

    def check() -> str | None:
        with state.db.session() as db:
            user = authenticate(db, username, password, attempts=s.login_attempts, lockout_s=s.lockout_s)
            if user is None:
                audit.record(
                    db,
                    None,
                    "login",
                    "user",
                    username[:64],
                    outcome="refused",
                    username=username,
                    ip=ip,
                    user_agent=agent,
                )
                return None
            token, _row = open_login(db, user, ip, agent)
            audit.record(db, None, "login", "user", user.id, username=user.username, ip=ip, user_agent=agent)
            return token

    token = await run_in_threadpool(check)
    if token is None:
        return RedirectResponse(
            "/login?error=Wrong+user+name+or+password+(or+too+many+tries%3B+wait+a+few+minutes).", status_code=303
        )
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="strict", secure=s.cookie_secure, path="/", max_age=int(s.max_login_s)
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(caller: CsrfCaller, state: State) -> RedirectResponse:
    with state.db.session() as db:
        close_login(db, caller.login_id)
        audit.record(db, caller, "logout", "user", caller.user_id)
    response = RedirectResponse("/login?reason=You+are+logged+out.", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/api/me")
def me(caller: ApiCaller, state: State) -> dict[str, Any]:
    """Who is logged in, the CSRF token for this login, and what the pages need to know (protocols, scales)."""
    protocols = {
        name: {
            "title": p.title,
            "scale": {
                "name": p.scale.name,
                "min": p.scale.min,
                "max": p.scale.max,
                "integer": p.scale.integer,
                "anchors": list(p.scale.anchors),
                "source": p.scale.source,
            },
            "tasks": [{"name": t.name, "prompt": t.prompt, "reps": t.reps} for t in p.tasks],
        }
        for name, p in PROTOCOLS.items()
    }
    return {
        "user": {"id": caller.user_id, "username": caller.username, "name": caller.full_name, "role": caller.role},
        "clinic_id": caller.clinic_id,
        "csrf": caller.csrf,
        "stale_after_s": state.settings.stale_after_s,
        "idle_logout_s": state.settings.idle_logout_s,
        "protocols": protocols,
    }
