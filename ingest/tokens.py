"""Patient join links and page keys, kept in Redis so any ingest process serves them and a restart keeps them.

- A join token is unguessable (32 random bytes), expires after ``ttl_s`` and works for one join. Only its SHA-256
  is stored: ``feqa:join:<digest>`` holds the session id, the expiry and whether it was used; the record outlives
  the expiry by another ``ttl_s`` so a late patient hears "expired" rather than "unknown", then Redis drops it.
  :meth:`JoinTokens.claim` is one Lua script: of two joins racing with the same link, exactly one gets it.
- The page key, handed to the page at its join, authorises the page's later calls (offer, task events, end,
  coaching socket). Only its SHA-256 is stored, in ``pagekey:{sid}``, which the session's end deletes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from common.bus import Bus
from common.errors import PermanentError
from common.scripts import run_script
from common.streams import JOIN, PAGE_KEY


class TokenError(PermanentError):
    """The token is unknown, expired or already used; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


UNKNOWN = "unknown join link: ask your clinician for a new one"
USED = "this join link was already used; a link works for one connection"
EXPIRED = "this join link has expired: ask your clinician for a new one"

# KEYS: the token record. ARGV: now, "claim" | "peek". Returns {status, sid}: 0 ok, 404, 409, 410.
_CHECK = """
local rec = redis.call('HMGET', KEYS[1], 'sid', 'expires_at', 'used')
if not rec[1] then return {404, ''} end
if rec[3] == '1' then return {409, rec[1]} end
if tonumber(ARGV[1]) >= tonumber(rec[2]) then return {410, rec[1]} end
if ARGV[2] == 'claim' then redis.call('HSET', KEYS[1], 'used', '1') end
return {0, rec[1]}
"""


class JoinTokens:
    """Join links of every ingest process sharing one Redis."""

    def __init__(self, bus: Bus, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._bus = bus
        self._ttl_s = ttl_s
        self._clock = clock

    async def issue(self, sid: str) -> tuple[str, float]:
        """A new token for ``sid`` and its expiry time (epoch seconds)."""
        token = secrets.token_urlsafe(32)
        expires_at = self._clock() + self._ttl_s
        key = JOIN.key(digest(token))
        keep_ms = max(1, int(2 * self._ttl_s * 1000))

        async def op(r: aioredis.Redis) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.hset(key, mapping={"sid": sid, "expires_at": repr(expires_at), "used": "0"})
            pipe.pexpire(key, keep_ms)
            await pipe.execute()

        await self._bus.run("issue join link", op)
        return token, expires_at

    async def peek(self, token: str) -> str:
        """The session of a valid, unused token (without using it)."""
        return await self._check(token, "peek")

    async def claim(self, token: str) -> str:
        """Use the token once: return its session id; any later claim fails with 409."""
        return await self._check(token, "claim")

    async def _check(self, token: str, mode: str) -> str:
        if not token or len(token) > 256:
            raise TokenError(UNKNOWN, 404)
        key = JOIN.key(digest(token))
        status, sid = await run_script(self._bus, "join link", _CHECK, [key], [repr(self._clock()), mode])
        status = int(status)
        if status == 404:
            raise TokenError(UNKNOWN, 404)
        if status == 409:
            raise TokenError(USED, 409)
        if status == 410:
            raise TokenError(EXPIRED, 410)
        return sid.decode() if isinstance(sid, bytes) else str(sid)


class PageKeys:
    """The page key of each joined session (one per session: a second join cannot mint another)."""

    def __init__(self, bus: Bus, ttl_s: float) -> None:
        self._bus = bus
        self._ttl_ms = max(1, int(ttl_s * 1000))

    async def mint(self, sid: str) -> str:
        """A new page key for ``sid``; :class:`TokenError` 409 when the session already has one."""
        key = secrets.token_urlsafe(32)
        name = PAGE_KEY.key(sid)
        made = await self._bus.run("page key", lambda r: r.set(name, digest(key), px=self._ttl_ms, nx=True))
        if not made:
            raise TokenError("this session was already joined", 409)
        return key

    async def check(self, sid: str, key: str | None) -> None:
        """Pass when ``key`` is the session's page key, else a 403 :class:`TokenError`."""
        if not key or len(key) > 256:
            raise TokenError("unknown session or missing session key", 403)
        try:
            name = PAGE_KEY.key(sid)
        except ValueError:
            raise TokenError("unknown session or missing session key", 403) from None
        stored = await self._bus.run("page key", lambda r: r.get(name))
        if stored is None:
            raise TokenError("unknown session or missing session key", 403)
        expected = stored.decode() if isinstance(stored, bytes) else str(stored)
        if not hmac.compare_digest(expected, digest(key)):
            raise TokenError("wrong session key", 403)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", errors="replace")).hexdigest()
