"""The stream table: every Redis key feqa uses, its bound, trimming mode and consumer group.

Per-session keys carry the session id as a Redis Cluster hash tag (``frames:{sid}``), so all of a session's keys
live on one shard. Bounds are entry counts. ``approximate`` trimming (``MAXLEN ~``) lets Redis drop whole macro
nodes, so a stream may hold up to one node (``stream-node-max-entries``, default 100) more than its bound; the
streams with big payloads and short bounds (frames, crops) trim exactly so their memory is truly capped.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class StreamSpec:
    """One stream: ``template`` contains ``{sid}`` for per-session streams."""

    template: str
    maxlen: int
    approximate: bool = True
    group: str | None = None
    policy: str = "oldest entries trimmed"

    @property
    def per_session(self) -> bool:
        return "{sid}" in self.template

    def key(self, sid: str | None = None) -> str:
        """The Redis key; per-session streams need ``sid`` and wrap it in a hash tag."""
        if self.per_session:
            if not sid:
                raise ValueError(f"stream {self.template} needs a session id")
            if any(c in sid for c in "{}: \t\r\n"):
                raise ValueError(f"session id {sid!r} contains a character not allowed in keys")
            return self.template.replace("{sid}", "{" + sid + "}")
        return self.template


SESSIONS = StreamSpec(
    "feqa:sessions", maxlen=10_000, policy="oldest trimmed; read fan-out (every worker sees every announcement)"
)
EVENTS = StreamSpec("events:{sid}", maxlen=10_000, policy="oldest trimmed")
FRAMES = StreamSpec(
    "frames:{sid}", maxlen=60, approximate=False, group="tracker", policy="~2 s at 30 fps; newest frame wins"
)
OBS = StreamSpec("obs:{sid}", maxlen=512, policy=">= 256 frames kept")
CROPS = StreamSpec("crops:{sid}", maxlen=160, approximate=False, policy=">= 80 crops kept")
WINDOWS = StreamSpec(
    "windows:{sid}",
    maxlen=200,
    group="scorer",
    policy="per session, read only by the scorer holding the session's lease; stale windows dropped and counted",
)
SCORES = StreamSpec("scores:{sid}", maxlen=12_000, policy="~1 h of scores")
COACH = StreamSpec("coach:{sid}", maxlen=100, policy="latest coaching messages for the patient page")
HEALTH = StreamSpec(
    "feqa:health",
    maxlen=2_000,
    policy="each service instance publishes a Health entry every few seconds; readers keep the latest per instance",
)
DEADLETTER = StreamSpec("feqa:deadletter", maxlen=10_000, policy="undecodable entries kept for inspection")

ALL_STREAMS: tuple[StreamSpec, ...] = (
    SESSIONS,
    EVENTS,
    FRAMES,
    OBS,
    CROPS,
    WINDOWS,
    SCORES,
    COACH,
    HEALTH,
    DEADLETTER,
)


def session_key(sid: str) -> str:
    """The ``session:{sid}`` hash holding a session's state."""
    return StreamSpec("session:{sid}", maxlen=0).key(sid)
