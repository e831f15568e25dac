"""Everything one ingest app owns (no module globals): bus, sessions, liveness, peer registry; join links and page
keys live in Redis (ingest.tokens), so every ingest process on one Redis serves every patient link."""

from __future__ import annotations

import dataclasses
import secrets

from common.bus import Bus
from common.health import HealthPublisher, percentiles
from common.liveness import IngestLiveness
from common.session_store import Retention
from ingest.pump import IngestCounters
from ingest.registry import PeerRegistry
from ingest.sessions import IngestSessions
from ingest.settings import IngestSettings
from ingest.tokens import JoinTokens, PageKeys, TokenError


@dataclasses.dataclass(frozen=True)
class SessionAccess:
    """A session the patient page may drive (its page key checked)."""

    sid: str
    protocol: str


class IngestState:
    def __init__(self, settings: IngestSettings, bus: Bus) -> None:
        self.settings = settings
        self.bus = bus
        self.instance = settings.instance or f"ingest-{secrets.token_hex(4)}"
        self.liveness = IngestLiveness(bus, self.instance, settings.lease_ttl_ms)
        self.sessions = IngestSessions(bus, Retention.from_settings(settings.common), self.liveness,
                                       settings.end_drain_s)  # fmt: skip
        self.store = self.sessions.store
        self.tokens = JoinTokens(bus, settings.token_ttl_s)
        self.page_keys = PageKeys(bus, settings.page_key_ttl_s)
        self.registry = PeerRegistry(settings.max_sessions)
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

    async def join(self, token: str) -> tuple[SessionAccess, str]:
        """Use a join token once; return the session and a fresh page key for its later calls."""
        sid = await self.tokens.peek(token)
        info = await self.store.get(sid)
        if info is None or info.state != "created":
            raise TokenError("this session is no longer open", 410)
        await self.tokens.claim(token)  # atomic: of two joins racing with one link, one gets here
        key = await self.page_keys.mint(sid)
        return SessionAccess(sid, info.protocol), key

    async def authorise(self, sid: str, key: str | None) -> SessionAccess:
        """The session if ``key`` is its page key, else a 403 :class:`TokenError`."""
        await self.page_keys.check(sid, key)
        info = await self.store.get(sid)
        if info is None:
            raise TokenError("unknown session or missing session key", 403)
        return SessionAccess(sid, info.protocol)
