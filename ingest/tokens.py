"""Patient join tokens: unguessable, expiring, good for one connection."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from collections.abc import Callable

from common.errors import PermanentError


class TokenError(PermanentError):
    """The token is unknown, expired or already used; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class _Grant:
    sid: str
    expires_at: float
    used: bool = False


class JoinTokens:
    """Issued tokens, keyed by their SHA-256 (the token itself is never stored). Owned by one app."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._grants: dict[str, _Grant] = {}

    def issue(self, sid: str) -> tuple[str, float]:
        """A new token for ``sid`` and its expiry time (epoch seconds)."""
        self._purge()
        token = secrets.token_urlsafe(32)
        expires_at = self._clock() + self._ttl_s
        self._grants[_digest(token)] = _Grant(sid, expires_at)
        return token, expires_at

    def peek(self, token: str) -> str:
        """The session of a valid, unused token (without using it)."""
        return self._check(token).sid

    def claim(self, token: str) -> str:
        """Use the token once: return its session id; any later claim fails with 409."""
        grant = self._check(token)
        grant.used = True
        return grant.sid

    def revoke_session(self, sid: str) -> None:
        """Forget every token of a session (it ended)."""
        for key in [k for k, g in self._grants.items() if g.sid == sid]:
            del self._grants[key]

    def __len__(self) -> int:
        return len(self._grants)

    def _check(self, token: str) -> _Grant:
        grant = self._grants.get(_digest(token)) if token else None
        if grant is None:
            raise TokenError("unknown join link: ask your clinician for a new one", 404)
        if grant.used:
            raise TokenError("this join link was already used; a link works for one connection", 409)
        if self._clock() >= grant.expires_at:
            raise TokenError("this join link has expired: ask your clinician for a new one", 410)
        return grant

    def _purge(self) -> None:
        now = self._clock()
        for key in [k for k, g in self._grants.items() if now >= g.expires_at + self._ttl_s]:
            del self._grants[key]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()
