"""The key table: every Redis key feqa uses, what it holds, who writes it, its bound and what removes it.

This is the complete list (design.md §2 shows the streams; this table adds the keys around them). A key not listed
here does not exist.

Streams (:class:`StreamSpec`, each with the one message type it carries):

================== ========================== ======================================= ==============================
key                writer -> reader           entry                                   bound / policy
================== ========================== ======================================= ==============================
feqa:sessions      ingest, sweepers -> all    SessionAnnounce (started / ended)       10k; fan-out (no group)
events:{sid}       ingest, dashboard -> all   Event (task_start/_end, marker, end)    10k
frames:{sid}       ingest -> tracker (group)  Frame (seq, capture/arrival time, px)   60 exact; newest frame wins
obs:{sid}          tracker -> scorer, dash    Obs (106 landmarks or why none)         512; expires per obs retention
crops:{sid}        tracker -> scorer          Crop (aligned RGB face crop)            160 exact
windows:{sid}      tracker -> scorer (group)  Window (hop / task_end)                 200; read by the lease holder
scores:{sid}       scorer -> dashboard (grp)  Score (window / task)                   12k (~1 h)
                   scorer -> fleet (grp)      (the same entries; group fleet)         (the fleet bridge's own group)
coach:{sid}        tracker -> patient page    Event type coach                        100
feqa:health        every service -> dash      Health (counters, gauges)               2k; latest per instance
feqa:deadletter    the bus -> people          DeadLetter (entry kept whole + why)     10k
================== ========================== ======================================= ==============================

Other keys (:class:`KeySpec`):

======================= ======== ================================================ =================================
key                     type     holds                                            removed by
======================= ======== ================================================ =================================
session:{sid}           hash     :class:`~common.messages.SessionInfo`            retention; unstarted: link life
tracker-lease:{sid}     string   owner of the session's tracking                  TTL (renewed by its holder)
scorer-lease:{sid}      string   owner of the session's scoring                   TTL (renewed by its holder)
ingest-lease:{sid}      string   the ingest serving the session (liveness)        TTL; missing while live = ended
feqa:live               set      sids of live sessions (the sweepers' list)       removed when the session ends
feqa:join:<digest>      hash     a join link: sha256 of the token -> sid, expiry  TTL; revoked at session end
joinlinks:{sid}         set      digests of the session's join links              deleted at session end
pagekey:{sid}           string   sha256 of the patient page's session key         deleted at session end
======================= ======== ================================================ =================================

Per-session keys carry the session id as a Redis Cluster hash tag (``frames:{sid}``), so a session's keys live on
one shard and the session's Lua scripts (publish guard, end) may touch all of them. Bounds are entry counts.
``approximate`` trimming (``MAXLEN ~``) lets Redis drop whole macro nodes, so a stream may hold up to one node
(``stream-node-max-entries``, default 100) more than its bound; the streams with big payloads and short bounds
(frames, crops) trim exactly so their memory is truly capped.

A session's streams live exactly as long as the session's data may (``StreamSpec.retention``): they are created
(empty, with their consumer groups) when the session starts, and the bus writes them only while they exist (XADD
NOMKSTREAM), so nothing ever recreates one. When the session ends (any way: completed, hung up, timed out, its
ingest lost) ``common.session_store`` deletes ``frames`` and ``crops`` at once (``delete``: no frame or crop of
an ended session can be stored again), gives ``obs`` the observation retention (``obs``) and the others the
session retention (``session``), after which Redis expires them.

Memory: the embedded Redis (infra.redis_server) has a budget (``maxmemory``) with the ``noeviction`` policy, so
no key in use is ever evicted; the streams' bounds keep each live session's memory fixed, the ingest refuses new
sessions (503) while Redis is near the budget, and a session nobody starts expires with its join link.

``scores:{sid}`` has two consumer groups: ``dashboard`` (:data:`SCORES`, made with the session's streams) and
``fleet`` (:data:`FLEET_SCORES`, made by the fleet bridge from the stream's first entry when it first reads a
session), so the dashboard and the Kafka bridge each get every score, at least once, independently.

Windows reach the scorer that owns the session: each session has its own ``windows:{sid}``, read in group
``scorer`` only by the holder of ``scorer-lease:{sid}`` (``common.ownership``); a new holder reclaims what the
previous one left pending, so a session's per-frame feature cache lives on one worker.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Generic, Literal, TypeVar

from common.messages import (
    Crop,
    DeadLetter,
    Event,
    Frame,
    Health,
    Message,
    Obs,
    Score,
    SessionAnnounce,
    Window,
)

M = TypeVar("M", bound=Message)

_BAD_ID_CHARS = "{}: \t\r\n"


@functools.lru_cache(maxsize=8192)
def _session_key(template: str, sid: str | None) -> str:
    return template.replace("{sid}", "{" + _check_sid(sid, template) + "}")


def _check_sid(sid: str | None, template: str) -> str:
    if not sid:
        raise ValueError(f"key {template} needs a session id")
    if any(c in sid for c in _BAD_ID_CHARS):
        raise ValueError(f"session id {sid!r} contains a character not allowed in keys")
    return sid


@dataclasses.dataclass(frozen=True)
class StreamSpec(Generic[M]):
    """One stream: ``template`` contains ``{sid}`` for per-session streams; ``message`` is the type it carries."""

    template: str
    message: type[M]
    maxlen: int
    approximate: bool = True
    group: str | None = None
    policy: str = "oldest entries trimmed"
    retention: Literal["none", "delete", "obs", "session"] = "none"  # what the session's end does to it

    def __post_init__(self) -> None:
        if self.retention != "none" and not self.per_session:
            raise ValueError(f"stream {self.template}: only per-session streams follow a session's retention")

    @property
    def per_session(self) -> bool:
        return "{sid}" in self.template

    @property
    def consumer_group(self) -> str:
        """The group name (streams read in a group have one)."""
        if self.group is None:
            raise ValueError(f"stream {self.template} has no consumer group")
        return self.group

    @property
    def session_bound(self) -> bool:
        """Created at the session's start and written only while it exists (never recreated by a write)."""
        return self.retention != "none"

    def key(self, sid: str | None = None) -> str:
        """The Redis key; per-session streams need ``sid`` and wrap it in a hash tag."""
        return _session_key(self.template, sid) if "{sid}" in self.template else self.template


@dataclasses.dataclass(frozen=True)
class KeySpec:
    """A key that is not a stream. ``{sid}`` is a session hash tag; ``<name>`` a plain placeholder."""

    template: str
    type: Literal["hash", "string", "set"]
    holds: str
    removed_by: str

    @property
    def per_session(self) -> bool:
        return "{sid}" in self.template

    def key(self, part: str | None = None) -> str:
        if self.per_session:
            return self.template.replace("{sid}", "{" + _check_sid(part, self.template) + "}")
        if "<" in self.template:
            if not part or any(c in part for c in _BAD_ID_CHARS):
                raise ValueError(f"key {self.template} needs a plain name, got {part!r}")
            head, _, rest = self.template.partition("<")
            return head + part + rest.partition(">")[2]
        return self.template


SESSIONS = StreamSpec(
    "feqa:sessions",
    SessionAnnounce,
    maxlen=10_000,
    policy="oldest trimmed; read fan-out (every worker sees every announcement)",
)
EVENTS = StreamSpec("events:{sid}", Event, maxlen=10_000, policy="oldest trimmed", retention="session")
FRAMES = StreamSpec(
    "frames:{sid}",
    Frame,
    maxlen=60,
    approximate=False,
    group="tracker",
    policy="~2 s at 30 fps; newest frame wins; deleted when the session ends",
    retention="delete",
)
OBS = StreamSpec(
    "obs:{sid}",
    Obs,
    maxlen=512,
    policy=">= 256 frames kept; expires per the observation retention after the session ends",
    retention="obs",
)
CROPS = StreamSpec(
    "crops:{sid}",
    Crop,
    maxlen=160,
    approximate=False,
    policy=">= 80 crops kept; deleted when the session ends",
    retention="delete",
)
WINDOWS = StreamSpec(
    "windows:{sid}",
    Window,
    maxlen=200,
    group="scorer",
    policy="per session, read only by the scorer holding the session's lease; stale windows dropped and counted",
    retention="session",
)
SCORES = StreamSpec(
    "scores:{sid}",
    Score,
    maxlen=12_000,
    group="dashboard",
    policy="~1 h of scores; the dashboard stores task scores from it in group dashboard (ack after commit)",
    retention="session",
)
FLEET_SCORES = dataclasses.replace(
    SCORES, group="fleet", policy="the same scores:{sid} entries, read by the fleet bridge to Kafka in group fleet"
)
COACH = StreamSpec(
    "coach:{sid}", Event, maxlen=100, policy="latest coaching messages for the patient page", retention="session"
)
HEALTH = StreamSpec(
    "feqa:health",
    Health,
    maxlen=2_000,
    policy="each service instance publishes a Health entry every few seconds; readers keep the latest per instance",
)
DEADLETTER = StreamSpec(
    "feqa:deadletter", DeadLetter, maxlen=10_000, policy="undecodable or refused entries kept whole for inspection"
)

ALL_STREAMS: tuple[StreamSpec[Any], ...] = (
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

SESSION = KeySpec("session:{sid}", "hash", "SessionInfo (common.messages)", "session retention (expire)")
LIVE = KeySpec("feqa:live", "set", "session ids of live sessions", "the session's end")
JOIN = KeySpec("feqa:join:<digest>", "hash", "a join link: sid, expiry, used", "TTL (the link's lifetime)")
JOIN_LINKS = KeySpec("joinlinks:{sid}", "set", "digests of the session's join links (revoked at its end)",
                     "the session's end")  # fmt: skip
PAGE_KEY = KeySpec("pagekey:{sid}", "string", "sha256 of the patient page's session key", "the session's end")
LEASE_ROLES = ("ingest", "tracker", "scorer")


def lease_spec(role: str) -> KeySpec:
    """The lease key of a role (``tracker-lease:{sid}``): the owner's name with a TTL."""
    if role not in LEASE_ROLES:
        raise ValueError(f"unknown lease role {role!r}; roles: {', '.join(LEASE_ROLES)}")
    return KeySpec(f"{role}-lease:{{sid}}", "string", f"the {role} instance holding the session", "TTL")


ALL_KEYS: tuple[KeySpec, ...] = (SESSION, *(lease_spec(r) for r in LEASE_ROLES), LIVE, JOIN, JOIN_LINKS, PAGE_KEY)

SESSION_STREAMS: tuple[StreamSpec[Any], ...] = tuple(s for s in ALL_STREAMS if s.session_bound)


def session_key(sid: str) -> str:
    """The ``session:{sid}`` hash holding a session's state."""
    return SESSION.key(sid)
