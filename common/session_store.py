"""The ``session:{sid}`` hash and a session's lifecycle: create, start, update, end (with retention).

Only this module reads or writes the session hash, always as :class:`~common.messages.SessionInfo`.

Ending (:meth:`SessionStore.end`) is one Lua script on the session's keys (they share the ``{sid}`` hash tag), so
it is atomic and the first reason wins however many processes end the same session at once (the ingest on hangup,
a sweeper on a lost ingest):

- the hash gets state ``ended``, the end time, the reason, the session's counters and its purge times;
- ``frames:{sid}`` and ``crops:{sid}`` are deleted at once, and so are the patient page's key and the session's
  join links (``joinlinks:{sid}`` lists them; their records are deleted right after the script); the bus never
  recreates a session's stream (XADD NOMKSTREAM), so no frame or crop of the session can be stored again;
- ``obs:{sid}`` expires after the observation retention (0: deleted now); the hash and every other stream of the
  session after the session retention.

The session's streams are created (empty, with their consumer groups) by :meth:`SessionStore.start`, before the
session is announced, so every stream a session ever has exists when it ends and gets its expiry.

Only the winner then removes the session from ``feqa:live``, announces ``ended`` on ``feqa:sessions`` and puts
``session_end`` on ``events:{sid}``. Video lasts nowhere else: the live Redis keeps no disk snapshot (infra).

A session whose hash is gone while its ingest still serves it has lost its state: the live Redis keeps no
persistence, so a restart of it forgets every session (hash, consent, events, observations, leases). Such a session
does not resume: its consent and task marks are gone, and scoring it on would mix a lost past into new records.
Its ingest ends the call and :meth:`SessionStore.announce_lost` announces ``ended`` with reason ``state_lost`` on
``feqa:sessions`` (nothing of the session is written back), so the dashboard records the end with that reason and
the workers drop the session; the patient starts a new one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from common.bus import Bus
from common.errors import DecodeError
from common.logs import session_logger
from common.messages import Event, SessionAnnounce, SessionInfo
from common.scripts import run_script
from common.settings import CommonSettings
from common.streams import (
    EVENTS,
    JOIN,
    JOIN_LINKS,
    LIVE,
    PAGE_KEY,
    SESSION_STREAMS,
    SESSIONS,
    StreamSpec,
    session_key,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Retention:
    """How long a session's data stays in Redis after it ended (seconds; 0 deletes at the end)."""

    obs_s: float = 3600.0
    session_s: float = 7 * 24 * 3600.0

    @classmethod
    def from_settings(cls, common: CommonSettings) -> Retention:
        return cls(obs_s=float(common.obs_retention_s), session_s=float(common.session_retention_s))


# KEYS: hash, then the streams and keys to delete (count ARGV[3]), to expire with the observation retention (count
# ARGV[4]), to expire with the session retention (the rest). ARGV: session ms, obs ms, the two counts, then the hash
# fields of the end (pairs). Returns {won (1, 0 already ended, -1 no such session), protocol}.
_END = """
local state = redis.call('HGET', KEYS[1], 'state')
local protocol = redis.call('HGET', KEYS[1], 'protocol') or ''
local won = 0
if state and state ~= 'ended' then
  redis.call('HSET', KEYS[1], unpack(ARGV, 5))
  won = 1
end
local n_del, n_obs = tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 2, 1 + n_del do redis.call('DEL', KEYS[i]) end
if won == 1 or not state then
  if state then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
  for i = 2 + n_del, 1 + n_del + n_obs do
    if tonumber(ARGV[2]) <= 0 then redis.call('DEL', KEYS[i]) else redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
  end
  for i = 2 + n_del + n_obs, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
if not state then won = -1 end
return {won, protocol}
"""
_EXPIRE_UNSTARTED = """
if redis.call('HGET', KEYS[1], 'state') ~= 'created' then return 0 end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"""
# Partial updates touch only a hash that exists (an expired or purged session is not brought back half-empty).
_UPDATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

STATE_LOST = "state_lost"  # the end reason of a session whose state Redis lost (see the module doc)


class SessionStore:
    """Reads and writes sessions for one process."""

    def __init__(self, bus: Bus, retention: Retention | None = None) -> None:
        self.bus = bus
        self.retention = retention or Retention()

    async def create(self, info: SessionInfo, expire_s: float | None = None) -> None:
        """Write a new session's whole hash. A session never started expires after ``expire_s`` (the ingest passes
        its join-link lifetime), else after the session retention; :meth:`start` removes that expiry."""
        key, fields = session_key(info.sid), info.encode()
        ttl_ms = max(1, int((self.retention.session_s if expire_s is None else expire_s) * 1000))

        async def op(r: aioredis.Redis) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping=dict[Any, Any](fields))
            pipe.pexpire(key, ttl_ms)
            await pipe.execute()

        await self.bus.run(f"create {key}", op)
        session_logger(log, info.sid).info("session created for protocol %s (%s)", info.protocol, info.source)

    async def get(self, sid: str) -> SessionInfo | None:
        """The session, or None when it does not exist; :class:`DecodeError` when its hash is not a session."""
        key = session_key(sid)
        fields = await self.bus.run(f"read {key}", lambda r: r.hgetall(key))
        return SessionInfo.decode(fields) if fields else None

    async def require(self, sid: str) -> SessionInfo:
        info = await self.get(sid)
        if info is None:
            raise DecodeError(f"no session {sid}")
        return info

    async def update(self, sid: str, **changes: Any) -> bool:
        """Change fields of an existing session (validated by SessionInfo); False when there is no such session."""
        pairs = [x for kv in SessionInfo.changes(**changes).items() for x in kv]
        return bool(await run_script(self.bus, f"update {session_key(sid)}", _UPDATE, [session_key(sid)], pairs))

    async def expire_unstarted(self, sid: str, expire_s: float) -> bool:
        """Give a session that has not started ``expire_s`` more to start (the patient joined late in the link's
        life); False when it is gone or already started."""
        key, ms = session_key(sid), max(1, int(expire_s * 1000))
        return bool(await run_script(self.bus, f"expire {key}", _EXPIRE_UNSTARTED, [key], [ms]))

    async def start(self, sid: str, protocol: str) -> None:
        """The patient joined (or the file opened): the session's streams are created (empty, with their consumer
        groups), then it is ``live``, listed live and announced ``started``."""
        now = time.time()
        if await self.get(sid) is None:
            raise DecodeError(f"no session {sid} to start")
        await self.bus.run(f"create streams of {sid}", lambda r: _create_streams(r, sid))
        await self.update(sid, state="live", started_ts=now)
        await self.bus.run(f"keep {session_key(sid)}", lambda r: r.persist(session_key(sid)))  # no unstarted expiry
        await self.bus.run("live set", lambda r: r.sadd(LIVE.key(), sid))
        await self.bus.publish(SESSIONS, SessionAnnounce(sid=sid, state="started", protocol=protocol, ts=now))

    async def live(self) -> list[str]:
        """Sessions listed live (started and not yet ended)."""
        members = await self.bus.run("live set", lambda r: r.smembers(LIVE.key()))
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def announce_lost(self, sid: str, protocol: str = "") -> None:
        """Announce the end of a session whose hash is gone while it was served (see the module doc)."""
        await self.unlist(sid)
        await self.bus.publish(SESSIONS, SessionAnnounce(sid=sid, state="ended", protocol=protocol, ts=time.time(),
                                                         reason=STATE_LOST))  # fmt: skip
        session_logger(log, sid).warning("session state lost (Redis restarted or was flushed): announced its end")

    async def unlist(self, sid: str) -> None:
        await self.bus.run("live set", lambda r: r.srem(LIVE.key(), sid))

    async def end(self, sid: str, reason: str, stats: dict[str, int] | None = None) -> bool:
        """End the session (see the module doc); True for the call that recorded the end, False otherwise."""
        now = time.time()
        r = self.retention
        fields = SessionInfo.changes(state="ended", ended_ts=now, end_reason=reason, stats=stats or {},
                                     purge_ts=now + r.session_s, obs_purge_ts=now + r.obs_s)  # fmt: skip
        links_key = JOIN_LINKS.key(sid)
        links = await self.bus.run(f"read {links_key}", lambda r: r.smembers(links_key))
        gone = [s.key(sid) for s in SESSION_STREAMS if s.retention == "delete"] + [PAGE_KEY.key(sid), links_key]
        obs = [s.key(sid) for s in SESSION_STREAMS if s.retention == "obs"]
        kept = [s.key(sid) for s in SESSION_STREAMS if s.retention == "session"]
        keys = [session_key(sid), *gone, *obs, *kept]
        head = [int(r.session_s * 1000), int(r.obs_s * 1000), len(gone), len(obs)]
        args = [*head, *(x for kv in fields.items() for x in kv)]
        won, protocol = await run_script(self.bus, f"end {sid}", _END, keys, args)
        protocol = protocol.decode() if isinstance(protocol, bytes) else str(protocol)
        if links:  # the links die with the session (whoever ends it; a link record is outside the session's slot)
            records = [JOIN.key(d.decode() if isinstance(d, bytes) else str(d)) for d in links]
            await self.bus.run(f"revoke join links of {sid}", lambda r: r.delete(*records))
        if int(won) != 1:
            if int(won) < 0:
                await self.unlist(sid)
            return False
        await self.unlist(sid)
        await self.bus.publish(SESSIONS, SessionAnnounce(sid=sid, state="ended", protocol=protocol, ts=now,
                                                         reason=reason))  # fmt: skip
        await self.bus.publish(EVENTS, Event(sid=sid, type="session_end", ts=now, protocol=protocol, text=reason))
        session_logger(log, sid).info("session ended: %s %s", reason, json.dumps(stats or {}, sort_keys=True))
        return True


_SCRATCH_GROUP = "feqa-create"


async def _create_streams(r: aioredis.Redis, sid: str) -> None:
    """Create a session's streams, empty, each with its consumer group (a stream without one gets a scratch group,
    destroyed again in the same transaction, since Redis has no command that creates an empty stream alone)."""
    pipe = r.pipeline(transaction=True)
    for spec in SESSION_STREAMS:
        _add_stream(pipe, spec, sid)
    try:
        await pipe.execute()
    except ResponseError as exc:  # BUSYGROUP: started before (a retried start); the streams exist
        if "BUSYGROUP" not in str(exc):
            raise


def _add_stream(pipe: Any, spec: StreamSpec[Any], sid: str) -> None:
    key = spec.key(sid)
    if spec.group:
        pipe.xgroup_create(key, spec.group, id="0", mkstream=True)
    else:
        pipe.xgroup_create(key, _SCRATCH_GROUP, id="$", mkstream=True)
        pipe.xgroup_destroy(key, _SCRATCH_GROUP)
