"""Leases: a per-session key holding its owner's name with a TTL (``<role>-lease:{sid}``, see common.streams).

- :meth:`Leases.hold` takes a free lease or renews one the caller holds (SET NX PX / PEXPIRE in one script);
- :meth:`Leases.renew` only renews: a lease that expired meanwhile is not taken back silently, so a holder that
  stalled past its TTL learns that it lost the session (someone may have ended it or taken it over);
- :meth:`Leases.release` deletes it only if the caller still holds it.

Ownership of sessions by workers (common.ownership) and the liveness of ingests (common.liveness) use these.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from common.bus import Bus
from common.scripts import run_script
from common.streams import KeySpec, lease_spec

_HOLD = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Leases:
    """The leases of one role (``tracker``, ``scorer``, ``ingest``)."""

    def __init__(self, bus: Bus, role: str) -> None:
        self.bus = bus
        self.role = role
        self.spec: KeySpec = lease_spec(role)

    def key(self, sid: str) -> str:
        return self.spec.key(sid)

    async def hold(self, sid: str, owner: str, ttl_ms: int) -> bool:
        """Take the lease when free, or renew it when ``owner`` holds it; False when another owner holds it."""
        key = self.key(sid)
        return bool(await run_script(self.bus, f"lease {key}", _HOLD, [key], [owner, int(ttl_ms)]))

    async def renew(self, sid: str, owner: str, ttl_ms: int) -> bool:
        """Renew a lease ``owner`` holds; False when it expired or another owner holds it."""
        key = self.key(sid)
        return bool(await run_script(self.bus, f"renew {key}", _RENEW, [key], [owner, int(ttl_ms)]))

    async def release(self, sid: str, owner: str) -> bool:
        """Give the lease back if ``owner`` still holds it."""
        key = self.key(sid)
        return bool(await run_script(self.bus, f"release {key}", _RELEASE, [key], [owner]))

    async def holder(self, sid: str) -> str | None:
        """Who holds the lease now (None when nobody)."""
        key = self.key(sid)
        value = await self.bus.run(f"get {key}", lambda r: r.get(key))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def held(self, sids: list[str]) -> dict[str, bool]:
        """Whether each session's lease exists (one round trip)."""

        async def op(r: aioredis.Redis) -> list[int]:
            pipe = r.pipeline(transaction=False)
            for sid in sids:
                pipe.exists(self.key(sid))
            return list(await pipe.execute())

        found = await self.bus.run(f"{self.role} leases", op) if sids else []
        return {sid: bool(n) for sid, n in zip(sids, found, strict=True)}
