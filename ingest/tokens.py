"""Patient join links and page keys, kept in Redis so any ingest process serves them and a restart keeps them.

- A join token is unguessable (32 random bytes) and belongs to one session. It must be first used within ``ttl_s``;
  only its SHA-256 is stored: ``feqa:join:<digest>`` holds the session id, the expiry and whether it was used; an
  unused record outlives the expiry by another ``ttl_s`` so a late patient hears "expired" rather than "unknown".
  :meth:`JoinTokens.claim` is one Lua script: of two joins racing with the same link, exactly one is the first.
- After its first use the link stays valid for its own session until that session ends (the record is kept for
  ``keep_s``, the longest a session may run): opening it again, e.g. after a reload, resumes the session
  (:meth:`JoinTokens.peek` says ``used``; ingest.state rebinds the session to the new page). It can never start
  another session.
- The session's links are listed in ``joinlinks:{sid}`` (their digests, kept as long as the longest-lived of them),
  so the session's end revokes them whoever ends it (common.session_store deletes the records): a link opened after
  its session ended is unknown (404).
- The page key, handed to the page at its join, authorises the page's later calls (offer, task events, end,
  coaching socket). Only its SHA-256 is stored, in ``pagekey:{sid}``, which the session's end deletes; a resume
  replaces it, so the page that resumed holds the only valid key.
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
from common.streams import JOIN, JOIN_LINKS, PAGE_KEY, session_key


class TokenError(PermanentError):
    """The token is unknown, expired or already used; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


UNKNOWN = "unknown join link: ask your clinician for a new one"
USED = "this join link was already used; a link works for one connection"
EXPIRED = "this join link has expired: ask your clinician for a new one"
OVER = "this session is over; ask your clinician for a new link if you need another"

# KEYS: the token record. ARGV: now, "claim" | "peek", keep ms. Returns {status, sid}: 0 ok (unused), 409 used,
# 404 unknown, 410 expired unused. A claim marks the record used and keeps it for the session's longest life.
_CHECK = """
local rec = redis.call('HMGET', KEYS[1], 'sid', 'expires_at', 'used')
if not rec[1] then return {404, ''} end
if rec[3] == '1' then return {409, rec[1]} end
if tonumber(ARGV[1]) >= tonumber(rec[2]) then return {410, rec[1]} end
if ARGV[2] == 'claim' then
  redis.call('HSET', KEYS[1], 'used', '1')
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {0, rec[1]}
"""


# KEYS: the session's link list. ARGV: digest, keep ms. Adds the digest; the list lives as long as its longest link.
_LIST = """
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

# KEYS: page key, session hash. ARGV: digest, ttl ms. 1 when set; 0 when the session is gone or ended.
_REPLACE = """
local state = redis.call('HGET', KEYS[2], 'state')
if not state or state == 'ended' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class JoinTokens:
    """Join links of every ingest process sharing one Redis."""

    def __init__(
        self, bus: Bus, ttl_s: float, clock: Callable[[], float] = time.time, keep_s: float = 12 * 3600.0
    ) -> None:
        self._bus = bus
        self._ttl_s = ttl_s
        self._keep_ms = max(1, int(max(keep_s, 2 * ttl_s) * 1000))
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
        await self._list(sid, token, keep_ms)
        return token, expires_at

    async def _list(self, sid: str, token: str, keep_ms: int) -> None:
        """Note the link among its session's (revoked at the session's end) for at least ``keep_ms``."""
        await run_script(self._bus, "list join link", _LIST, [JOIN_LINKS.key(sid)], [digest(token), keep_ms])

    async def peek(self, token: str) -> tuple[str, bool]:
        """The session of a known token and whether it was used, without using it (404 unknown, 410 expired
        unused)."""
        return await self._check(token, "peek")

    async def claim(self, token: str) -> str:
        """Use the token for the first time: return its session id; a used one fails with 409."""
        sid, used = await self._check(token, "claim")
        if used:
            raise TokenError(USED, 409)
        await self._list(sid, token, self._keep_ms)  # the list now lives as long as the used link
        return sid

    async def _check(self, token: str, mode: str) -> tuple[str, bool]:
        if not token or len(token) > 256:
            raise TokenError(UNKNOWN, 404)
        key = JOIN.key(digest(token))
        args = [repr(self._clock()), mode, self._keep_ms]
        status, sid = await run_script(self._bus, "join link", _CHECK, [key], args)
        status = int(status)
        if status == 404:
            raise TokenError(UNKNOWN, 404)
        if status == 410:
            raise TokenError(EXPIRED, 410)
        return (sid.decode() if isinstance(sid, bytes) else str(sid)), status == 409


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

    async def issue(self, sid: str) -> str:
        """A fresh page key for a session that is not over (a join or a resume): any earlier key stops working at
        once; 410 when the session is over (one Lua script with the session hash, so an ended session never gets a
        key again)."""
        key = secrets.token_urlsafe(32)
        keys = [PAGE_KEY.key(sid), session_key(sid)]
        if not int(await run_script(self._bus, "page key", _REPLACE, keys, [digest(key), self._ttl_ms])):
            raise TokenError(OVER, 410)
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
            raise TokenError("this page's session key is not valid: the session was continued on another page", 403)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", errors="replace")).hexdigest()
