"""Server-side login sessions: the cookie holds a random token, the database only its SHA-256, the CSRF token that
forms and fetches must echo, and the last use (idle logout) and start (maximum length) of the login.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dashboard.tables import Login, User

COOKIE = "feqa_session"
TOUCH_EVERY_S = 10.0  # last use is written at most this often (idle logout granularity)


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is calling, as the handlers see it."""

    user_id: int
    username: str
    full_name: str
    role: str
    clinic_id: int | None
    csrf: str
    login_id: str
    ip: str
    user_agent: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class LoginRejected(Exception):
    """No valid login: the reason is shown on the login page."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_login(db: Session, user: User, ip: str, user_agent: str) -> tuple[str, Login]:
    """A new login for ``user``: returns the cookie token (shown once, never stored) and the row."""
    token = secrets.token_urlsafe(32)
    now = time.time()
    row = Login(
        id=token_digest(token),
        user_id=user.id,
        csrf=secrets.token_urlsafe(24),
        created_ts=now,
        last_seen_ts=now,
        ip=ip[:64],
        user_agent=user_agent[:300],
    )
    db.add(row)
    return token, row


def check_login(
    db: Session,
    token: str | None,
    *,
    idle_s: float,
    max_s: float,
    ip: str = "",
    user_agent: str = "",
    touch: bool = True,
) -> Caller:
    """The caller behind a cookie token, or :class:`LoginRejected` (unknown, idle too long, too old, user off)."""
    if not token:
        raise LoginRejected("please log in")
    row = db.get(Login, token_digest(token))
    if row is None:
        raise LoginRejected("please log in")
    now = time.time()
    if now - row.last_seen_ts > idle_s:
        db.delete(row)
        raise LoginRejected(f"you were logged out after {idle_s / 60:g} minutes without activity")
    if now - row.created_ts > max_s:
        db.delete(row)
        raise LoginRejected("your login expired; please log in again")
    user = db.get(User, row.user_id)
    if user is None or not user.active:
        db.delete(row)
        raise LoginRejected("this account is disabled")
    if touch and now - row.last_seen_ts > TOUCH_EVERY_S:
        row.last_seen_ts = now
    return Caller(
        user_id=user.id,
        username=user.username,
        full_name=user.full_name,
        role=user.role,
        clinic_id=user.clinic_id,
        csrf=row.csrf,
        login_id=row.id,
        ip=ip,
        user_agent=user_agent,
    )


def close_login(db: Session, login_id: str) -> None:
    db.execute(delete(Login).where(Login.id == login_id))


def purge_logins(db: Session, *, idle_s: float, max_s: float) -> int:
    """Delete logins that can no longer be used."""
    now = time.time()
    stale = list(
        db.scalars(select(Login.id).where((Login.last_seen_ts < now - idle_s) | (Login.created_ts < now - max_s)))
    )
    if stale:
        db.execute(delete(Login).where(Login.id.in_(stale)))
    return len(stale)


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected.encode(), (given or "").encode())
