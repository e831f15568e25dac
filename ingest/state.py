"""Everything one ingest app owns (no module globals): bus, sessions, liveness, peer registry, the service key and
the rate limiter; join links and page keys live in Redis (ingest.tokens), so every ingest process on one Redis
serves every patient link."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
from collections.abc import AsyncIterator

from common.bus import Bus
from common.health import HealthPublisher, percentiles
from common.liveness import IngestLiveness
from common.messages import Event
from common.session_store import Retention
from common.streams import EVENTS
from ingest.auth import ServiceKey
from ingest.pump import IngestCounters
from ingest.ratelimit import RateLimiter
from ingest.registry import PeerRegistry
from ingest.sessions import IngestSessions
from ingest.settings import IngestSettings
from ingest.tokens import OVER, JoinTokens, PageKeys, TokenError


@dataclasses.dataclass(frozen=True)
class SessionAccess:
    """A session the patient page may drive (its page key checked)."""

    sid: str
    protocol: str


@dataclasses.dataclass(frozen=True)
class Joined:
    """A join: the session, the page key for its later calls, and whether it resumed a session already joined."""

    access: SessionAccess
    key: str
    resumed: bool


class IngestState:
    def __init__(self, settings: IngestSettings, bus: Bus) -> None:
        settings.require_credential()
        self.settings = settings
        self.bus = bus
        self.instance = settings.instance or f"ingest-{secrets.token_hex(4)}"
        self.liveness = IngestLiveness(bus, self.instance, settings.lease_ttl_ms)
        self.sessions = IngestSessions(bus, Retention.from_settings(settings.common), self.liveness,
                                       settings.end_drain_s, unstarted_s=settings.token_ttl_s)  # fmt: skip
        self.store = self.sessions.store
        self.tokens = JoinTokens(bus, settings.token_ttl_s, keep_s=settings.page_key_ttl_s)
        self.page_keys = PageKeys(bus, settings.page_key_ttl_s)
        self.registry = PeerRegistry(settings.max_sessions)
        key = settings.api_key.get_secret_value() if settings.api_key is not None else None
        self.service_key = ServiceKey(key, None if key is not None else settings.api_key_file)
        self.limiter = RateLimiter()
        self._offer_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self.counters = IngestCounters()
        self.health = HealthPublisher(bus, "ingest", self.instance, self.health_sample, settings.health_every_s)

    def health_sample(self) -> tuple[dict[str, float], dict[str, float]]:
        """Counters: frames received / published / dropped (fps cap, newest-wins) / refused (session ended).
        Gauges: sessions (live peers and jobs), latency_p50_ms / latency_p99_ms (capture -> in Redis, newest 600)."""
        t = self.counters.totals
        counters = {"frames_received": t.received, "frames_published": t.published, "frames_dropped_fps": t.dropped_fps,
                    "frames_dropped_busy": t.dropped_busy, "frames_refused": t.refused}  # fmt: skip
        p50, p99 = percentiles(list(self.counters.latencies_ms))
        return {k: float(v) for k, v in counters.items()}, {"sessions": float(len(self.registry)),
                                                            "latency_p50_ms": p50, "latency_p99_ms": p99}  # fmt: skip

    @contextlib.asynccontextmanager
    async def offer_lock(self, sid: str) -> AsyncIterator[None]:
        """One offer at a time per session in this process (two racing offers must not both start a peer)."""
        lock, users = self._offer_locks.get(sid, (asyncio.Lock(), 0))
        self._offer_locks[sid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._offer_locks[sid]
            if users <= 1:
                del self._offer_locks[sid]
            else:
                self._offer_locks[sid] = (lock, users - 1)

    async def join(self, token: str) -> Joined:
        """Use a join token: the first use mints the session's page key; a later use of the same link while its
        session is open (a reload, another device) resumes it with a new page key, and the old key stops working."""
        sid, used = await self.tokens.peek(token)
        info = await self.store.get(sid)
        if info is None or info.ended:
            raise TokenError(OVER if used else "this session is no longer open", 410)
        if not used:
            try:
                await self.tokens.claim(token)  # atomic: of two first joins racing with one link, one gets here
            except TokenError as exc:
                if exc.status != 409:
                    raise
            else:
                await self.store.expire_unstarted(sid, self.settings.connect_timeout_s + 60.0)
                return Joined(SessionAccess(sid, info.protocol), await self.page_keys.issue(sid), resumed=False)
        return Joined(SessionAccess(sid, info.protocol), await self.page_keys.issue(sid), resumed=True)

    async def authorise(self, sid: str, key: str | None) -> SessionAccess:
        """The session if ``key`` is its page key, else a 403 :class:`TokenError`."""
        await self.page_keys.check(sid, key)
        info = await self.store.get(sid)
        if info is None:
            raise TokenError("unknown session or missing session key", 403)
        return SessionAccess(sid, info.protocol)

    async def done_reps(self, sid: str) -> list[tuple[str, int]]:
        """The (task, repetition) pairs the session has finished, from its events (a resumed page skips them)."""
        done: list[tuple[str, int]] = []
        for delivery in await self.bus.range(EVENTS, sid):
            event = delivery.message
            if isinstance(event, Event) and event.type == "task_end" and (event.task, event.rep) not in done:
                done.append((event.task, event.rep))
        return done
