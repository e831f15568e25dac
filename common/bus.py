"""The asyncio Redis stream bus: the only code in feqa that calls XADD, XREADGROUP, XACK and XAUTOCLAIM.

- ``publish`` appends a message with the stream's MAXLEN (approximate or exact, per :mod:`common.streams`).
- ``consume`` reads new entries for a consumer group, creating the group when it is missing (also after a Redis
  restart that lost it); entries that fail to decode are logged with their id, copied to the dead-letter stream
  and acked, so a bad entry never becomes a crash loop.
- ``reclaim`` takes over entries that a dead consumer left pending longer than ``min_idle_ms`` (XAUTOCLAIM;
  Redis 6.2 answers with 2 elements, 7.x with 3: both are handled).
- Every call reconnects with bounded exponential backoff when Redis goes away, and raises
  :class:`~common.errors.BusUnavailable` once ``reconnect_budget_s`` is spent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.errors import BusUnavailable, DecodeError
from common.messages import BY_KIND, DeadLetter, Message, peek_kind
from common.streams import DEADLETTER, StreamSpec, session_key

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
T = TypeVar("T")

_TRANSIENT = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


@dataclasses.dataclass(frozen=True)
class Delivery(Generic[M]):
    """One decoded entry read from ``stream`` with its Redis id."""

    stream: str
    id: str
    message: M


@dataclasses.dataclass
class BusStats:
    """Counters a service can report (drops and failures are visible, never silent)."""

    published: int = 0
    consumed: int = 0
    acked: int = 0
    reclaimed: int = 0
    dead_lettered: int = 0
    reconnects: int = 0


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Bounded exponential backoff for reconnects."""

    first_s: float = 0.05
    cap_s: float = 2.0
    budget_s: float = 30.0


class Bus:
    """A Redis stream bus for one process. Create with :meth:`connect`, close with :meth:`close`."""

    def __init__(self, client: aioredis.Redis, *, backoff: Backoff, name: str) -> None:
        self._r = client
        self._backoff = backoff
        self.name = name
        self.stats = BusStats()
        self._groups: set[tuple[str, str]] = set()

    @classmethod
    async def connect(cls, url: str, *, name: str = "feqa", backoff: Backoff | None = None) -> Bus:
        """Connect to ``url`` and check it answers (within the backoff budget)."""
        client = aioredis.Redis.from_url(
            url,
            decode_responses=False,
            socket_connect_timeout=2.0,
            health_check_interval=0,
            retry=Retry(NoBackoff(), 0),
            client_name=name,
        )
        bus = cls(client, backoff=backoff or Backoff(), name=name)
        await bus.ping()
        return bus

    async def close(self) -> None:
        await self._r.aclose()

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------------------------ plumbing

    async def _call(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self._backoff.budget_s
        delay = self._backoff.first_s
        while True:
            try:
                return await op()
            except _TRANSIENT as exc:
                if time.monotonic() + delay > deadline:
                    raise BusUnavailable(
                        f"Redis unreachable for {self._backoff.budget_s:.0f} s during {what}: {exc}; "
                        "check FEQA_REDIS_URL and that the server is running"
                    ) from exc
                self.stats.reconnects += 1
                log.warning("redis unavailable during %s (%s); retrying in %.2f s", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff.cap_s)

    async def ping(self) -> None:
        await self._call("ping", self._r.ping)

    # ------------------------------------------------------------------------------------------ publish

    async def publish(self, spec: StreamSpec, message: Message, sid: str | None = None) -> str:
        """Append ``message`` to its stream (key from ``spec`` and the message's ``sid``); return the id."""
        key = spec.key(sid or getattr(message, "sid", None)) if spec.per_session else spec.key()
        fields: dict[Any, Any] = message.encode()

        async def op() -> Any:
            return await self._r.xadd(key, fields, maxlen=spec.maxlen, approximate=spec.approximate)

        entry_id = await self._call(f"publish {key}", op)
        self.stats.published += 1
        return _text(entry_id)

    async def publish_many(self, spec: StreamSpec, messages: Sequence[Message]) -> list[str]:
        """Append several messages in one pipelined round trip."""
        if not messages:
            return []

        async def op() -> list[Any]:
            pipe = self._r.pipeline(transaction=False)
            for msg in messages:
                key = spec.key(getattr(msg, "sid", None)) if spec.per_session else spec.key()
                pipe.xadd(key, dict[Any, Any](msg.encode()), maxlen=spec.maxlen, approximate=spec.approximate)
            return list(await pipe.execute())

        ids = await self._call(f"publish {len(messages)} to {spec.template}", op)
        self.stats.published += len(messages)
        return [_text(i) for i in ids]

    # ------------------------------------------------------------------------------------------ groups

    async def ensure_group(self, key: str, group: str, start_id: str = "0") -> None:
        """Create ``group`` on ``key`` (and the stream) unless it exists."""

        async def op() -> None:
            try:
                await self._r.xgroup_create(key, group, id=start_id, mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

        await self._call(f"create group {group} on {key}", op)
        self._groups.add((key, group))

    async def consume(
        self,
        keys: Sequence[str],
        group: str,
        consumer: str,
        expect: type[M],
        *,
        count: int = 16,
        block_ms: int | None = 1000,
    ) -> list[Delivery[M]]:
        """Read new entries of ``keys`` for ``group``; undecodable ones are dead-lettered and acked."""
        raw = await self._read_group(keys, group, consumer, count, block_ms)
        return await self._decode_batch(raw, group, consumer, expect)

    async def consume_any(
        self,
        keys: Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int = 16,
        block_ms: int | None = 1000,
    ) -> list[Delivery[Message]]:
        """Like :meth:`consume` for streams carrying several message kinds (decoded by their ``k`` field)."""
        raw = await self._read_group(keys, group, consumer, count, block_ms)
        return await self._decode_batch(raw, group, consumer, None)

    async def _read_group(
        self, keys: Sequence[str], group: str, consumer: str, count: int, block_ms: int | None
    ) -> list[tuple[str, str, dict[bytes, bytes] | None]]:
        if not keys:
            if block_ms:
                await asyncio.sleep(block_ms / 1000)
            return []
        for key in keys:
            if (key, group) not in self._groups:
                await self.ensure_group(key, group)

        async def op() -> Any:
            try:
                return await self._r.xreadgroup(group, consumer, dict.fromkeys(keys, ">"), count=count, block=block_ms)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The group (or the stream) vanished, e.g. Redis restarted without persistence: recreate it.
                log.warning("consumer group %s missing on %s; recreating it", group, ",".join(keys))
                for key in keys:
                    self._groups.discard((key, group))
                    await self.ensure_group(key, group)
                return await self._r.xreadgroup(group, consumer, dict.fromkeys(keys, ">"), count=count, block=block_ms)

        reply = await self._call(f"read group {group}", op)
        return _flatten(reply)

    async def _decode_batch(
        self,
        raw: Iterable[tuple[str, str, dict[bytes, bytes] | None]],
        group: str,
        consumer: str,
        expect: type[M] | None,
    ) -> list[Delivery[Any]]:
        out: list[Delivery[Any]] = []
        for key, entry_id, fields in raw:
            if fields is None:  # trimmed while pending: nothing left to process
                await self.ack(key, group, [entry_id])
                continue
            try:
                cls = expect or BY_KIND.get(peek_kind(fields))
                if cls is None:
                    raise DecodeError(f"unknown message kind {peek_kind(fields)!r}")
                out.append(Delivery(key, entry_id, cls.decode(fields)))
            except DecodeError as exc:
                await self._dead_letter(key, entry_id, fields, group, consumer, exc)
        self.stats.consumed += len(out)
        return out

    async def _dead_letter(
        self, key: str, entry_id: str, fields: Mapping[bytes, bytes], group: str, consumer: str, exc: Exception
    ) -> None:
        log.error("dead-lettering %s %s (group %s): %s", key, entry_id, group, exc)
        letter = DeadLetter(
            stream=key,
            entry_id=entry_id,
            error=str(exc),
            consumer=f"{group}/{consumer}",
            ts=time.time(),
            original=DeadLetter.pack_fields(fields),
        )
        await self.publish(DEADLETTER, letter)
        await self.ack(key, group, [entry_id])
        self.stats.dead_lettered += 1

    async def ack(self, key: str, group: str, ids: Sequence[str]) -> int:
        """Acknowledge processed entries."""
        if not ids:
            return 0

        async def op() -> Any:
            return await self._r.xack(key, group, *ids)

        n = int(await self._call(f"ack {key}", op))
        self.stats.acked += n
        return n

    async def ack_deliveries(self, group: str, deliveries: Iterable[Delivery[Any]]) -> int:
        """Acknowledge deliveries, grouped per stream in one pipelined round trip."""
        by_key: dict[str, list[str]] = {}
        for d in deliveries:
            by_key.setdefault(d.stream, []).append(d.id)
        if not by_key:
            return 0

        async def op() -> list[Any]:
            pipe = self._r.pipeline(transaction=False)
            for key, ids in by_key.items():
                pipe.xack(key, group, *ids)
            return list(await pipe.execute())

        n = sum(int(x) for x in await self._call(f"ack {group}", op))
        self.stats.acked += n
        return n

    async def reclaim(
        self, key: str, group: str, consumer: str, expect: type[M], *, min_idle_ms: int, count: int = 64
    ) -> list[Delivery[M]]:
        """Take over entries another consumer left pending for at least ``min_idle_ms``."""
        if (key, group) not in self._groups:
            await self.ensure_group(key, group)

        async def op() -> list[tuple[str, str, dict[bytes, bytes] | None]]:
            # JUSTID claims the ids on both 6.2 and 7.x; entries trimmed while pending then read back as missing
            # (6.2 would otherwise hand back nil entries without their ids) and are acked below.
            reply = await self._r.xautoclaim(
                key, group, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count, justid=True
            )
            # redis-py parses a JUSTID reply to the bare id list; a raw reply is [next, ids, (deleted)].
            if reply and any(isinstance(part, list) for part in reply):
                reply = reply[1]
            ids = [_text(i) for i in reply or []]
            if not ids:
                return []
            pipe = self._r.pipeline(transaction=False)
            for entry_id in ids:
                pipe.xrange(key, min=entry_id, max=entry_id)
            found = await pipe.execute()
            return [(key, i, rows[0][1] if rows else None) for i, rows in zip(ids, found, strict=True)]

        raw = await self._call(f"reclaim {key}", op)
        out = await self._decode_batch(raw, group, consumer, expect)
        self.stats.reclaimed += len(out)
        return out

    async def pending_count(self, key: str, group: str) -> int:
        """How many entries of ``group`` on ``key`` are delivered but not acked."""

        async def op() -> Any:
            return await self._r.xpending(key, group)

        info = await self._call(f"pending {key}", op)
        return int(info["pending"]) if isinstance(info, dict) else int(info[0])

    async def group_backlog(self, key: str, group: str, *, limit: int = 10_000) -> int | None:
        """Entries of ``key`` that ``group`` has not acked (pending + not yet delivered, counted up to ``limit``).

        ``None`` when the stream or the group does not exist: nobody is reading it, so there is no backlog to wait
        for. Producers that must not outrun a consumer (recorded-video ingest) poll this.
        """

        async def op() -> Any:
            try:
                groups = await self._r.xinfo_groups(key)
            except ResponseError:
                return None
            for info in groups:
                row = {_text(k): v for k, v in info.items()}
                if _text(row["name"]) != group:
                    continue
                after = await self._r.xrange(key, min="(" + _text(row["last-delivered-id"]), count=limit)
                return int(row["pending"]) + len(after or [])
            return None

        result = await self._call(f"backlog {key}", op)
        return None if result is None else int(result)

    # ------------------------------------------------------------------------------------------ reads

    async def latest(self, key: str, expect: type[M], count: int) -> list[Delivery[M]]:
        """The newest ``count`` entries of ``key``, oldest first (undecodable ones skipped and logged)."""

        async def op() -> Any:
            return await self._r.xrevrange(key, count=count)

        entries = await self._call(f"latest {key}", op)
        return self._decode_plain(key, reversed(entries or []), expect)

    async def range(
        self, key: str, expect: type[M], start: str = "-", end: str = "+", count: int | None = None
    ) -> list[Delivery[M]]:
        """Entries of ``key`` between ids ``start`` and ``end`` (inclusive), oldest first."""

        async def op() -> Any:
            return await self._r.xrange(key, min=start, max=end, count=count)

        entries = await self._call(f"range {key}", op)
        return self._decode_plain(key, entries, expect)

    async def tail(
        self, cursors: Mapping[str, str], *, count: int = 100, block_ms: int | None = 1000
    ) -> list[Delivery[Message]]:
        """Fan-out read (no group) after the given ids; callers advance their cursors to the returned ids."""

        async def op() -> Any:
            streams: dict[Any, Any] = dict(cursors)
            return await self._r.xread(streams, count=count, block=block_ms)

        reply = await self._call("tail", op)
        out: list[Delivery[Message]] = []
        for key, entry_id, fields in _flatten(reply):
            cls = BY_KIND.get(peek_kind(fields or {}))
            if cls is None or fields is None:
                log.error("skipping undecodable entry %s %s", key, entry_id)
                continue
            try:
                out.append(Delivery(key, entry_id, cls.decode(fields)))
            except DecodeError as exc:
                log.error("skipping undecodable entry %s %s: %s", key, entry_id, exc)
        return out

    def _decode_plain(self, key: str, entries: Iterable[Any], expect: type[M]) -> list[Delivery[M]]:
        out: list[Delivery[M]] = []
        for entry_id, fields in entries:
            try:
                out.append(Delivery(key, _text(entry_id), expect.decode(fields)))
            except DecodeError as exc:
                log.error("skipping undecodable entry %s %s: %s", key, _text(entry_id), exc)
        return out

    async def length(self, key: str) -> int:
        async def op() -> Any:
            return await self._r.xlen(key)

        return int(await self._call(f"length {key}", op))

    # ------------------------------------------------------------------------------------------ session state

    async def set_session(self, sid: str, values: Mapping[str, str | int | float], ttl_s: int | None = None) -> None:
        """Write fields of the ``session:{sid}`` hash (and its retention)."""
        key = session_key(sid)

        async def op() -> None:
            pipe = self._r.pipeline(transaction=False)
            pipe.hset(key, mapping=dict(values))  # type: ignore[arg-type]
            if ttl_s:
                pipe.expire(key, ttl_s)
            await pipe.execute()

        await self._call(f"set {key}", op)

    async def get_session(self, sid: str) -> dict[str, str]:
        """The ``session:{sid}`` hash as text (empty when unknown)."""
        key = session_key(sid)

        async def op() -> Any:
            return await self._r.hgetall(key)

        raw = await self._call(f"get {key}", op)
        return {_text(k): _text(v) for k, v in raw.items()}

    async def delete(self, *keys: str) -> int:
        """Delete keys (a session's streams at retention, or test cleanup)."""

        async def op() -> Any:
            return await self._r.delete(*keys)

        return int(await self._call("delete", op)) if keys else 0

    # ------------------------------------------------------------------------------------------ leases

    async def hold_lease(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take the lease ``key`` for ``owner`` when free, or renew it when ``owner`` holds it; False when another
        owner holds it. Workers sharing sessions use this so one session is tracked by one worker at a time."""

        async def op() -> Any:
            return await self._r.eval(_HOLD_LEASE, 1, key, owner, int(ttl_ms))

        return bool(await self._call(f"lease {key}", op))

    async def release_lease(self, key: str, owner: str) -> bool:
        """Give the lease back if ``owner`` still holds it."""

        async def op() -> Any:
            return await self._r.eval(_RELEASE_LEASE, 1, key, owner)

        return bool(await self._call(f"release {key}", op))


_HOLD_LEASE = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _flatten(reply: Any) -> list[tuple[str, str, dict[bytes, bytes] | None]]:
    out: list[tuple[str, str, dict[bytes, bytes] | None]] = []
    if not reply:
        return out
    items = reply.items() if isinstance(reply, dict) else reply  # RESP3 gives a dict, RESP2 a list
    for key, entries in items:
        if isinstance(entries, list) and entries and isinstance(entries[0], list) and len(entries) == 1:
            entries = entries[0]
        for entry_id, fields in entries:
            out.append((_text(key), _text(entry_id), fields))
    return out
