"""Everything one ingest app owns (no module globals): bus, sessions, liveness, join tokens, peer registry, keys."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time

from common.bus import Bus
from common.liveness import IngestLiveness
from common.session_store import Retention
from ingest.registry import PeerRegistry
from ingest.sessions import IngestSessions
from ingest.settings import IngestSettings
from ingest.tokens import JoinTokens, TokenError


@dataclasses.dataclass
class SessionAccess:
    """A created session the patient page may drive once joined (``key_digest`` set at join)."""

    sid: str
    protocol: str
    expires_at: float
    key_digest: str = ""


class IngestState:
    def __init__(self, settings: IngestSettings, bus: Bus) -> None:
        self.settings = settings
        self.bus = bus
        self.instance = settings.instance or f"ingest-{secrets.token_hex(4)}"
        self.liveness = IngestLiveness(bus, self.instance, settings.lease_ttl_ms)
        self.sessions = IngestSessions(bus, Retention.from_settings(settings.common), self.liveness,
                                       settings.end_drain_s)  # fmt: skip
        self.store = self.sessions.store
        self.tokens = JoinTokens(settings.token_ttl_s)
        self.registry = PeerRegistry(settings.max_sessions)
        self._access: dict[str, SessionAccess] = {}

    def expect_join(self, sid: str, protocol: str, expires_at: float) -> None:
        self._purge()
        self._access[sid] = SessionAccess(sid, protocol, expires_at)

    def join(self, token: str) -> tuple[SessionAccess, str]:
        """Use a join token once; return the session and a fresh page key for its later calls."""
        sid = self.tokens.peek(token)
        access = self._access.get(sid)
        if access is None:
            raise TokenError("this session is no longer open", 410)
        self.tokens.claim(token)
        key = secrets.token_urlsafe(32)
        access.key_digest = _digest(key)
        return access, key

    def authorise(self, sid: str, key: str | None) -> SessionAccess:
        """The session if ``key`` is its page key, else a 403 :class:`TokenError`."""
        access = self._access.get(sid)
        if access is None or not access.key_digest or not key:
            raise TokenError("unknown session or missing session key", 403)
        if not hmac.compare_digest(access.key_digest, _digest(key)):
            raise TokenError("wrong session key", 403)
        return access

    def forget(self, sid: str) -> None:
        self._access.pop(sid, None)
        self.tokens.revoke_session(sid)

    def _purge(self) -> None:
        now = time.time()
        for sid in [s for s, a in self._access.items() if not a.key_digest and now >= a.expires_at]:
            self.forget(sid)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", errors="replace")).hexdigest()
