"""The asyncio Redis stream bus: the only code in feqa that calls XADD, XREADGROUP, XACK and XAUTOCLAIM.

Every call names a stream by its :class:`~common.streams.StreamSpec` and session id, never by a raw key, and the
spec's message type decodes what is read.

- ``publish`` appends with the stream's MAXLEN. A session's streams (``StreamSpec.session_bound``) are written
  with XADD NOMKSTREAM: they exist from the session's start until its end deleted (frames, crops) or retention
  expired them, and a write to one that is gone is refused (``publish`` returns None, counted as ``refused``), so no
  write ever recreates a purged stream.
- ``consume`` reads new entries for the spec's consumer group (created when missing, also after a Redis restart
  that lost it); ``reclaim`` takes over entries a dead consumer left pending (XAUTOCLAIM; Redis 6.2 answers with
  2 elements, 7.x with 3: both are handled). ``latest``, ``range`` and ``tail`` read without a group.
- One decode path with a policy: an entry that does not decode as the spec's message is dead-lettered (copied
  whole to ``feqa:deadletter`` with the error, then acked) on group reads, and skipped with a log line and a
  count on plain reads. Consumers dead-letter entries they refuse for their own reasons with :meth:`dead_letter`.
- Timeouts: connects give up after ``connect_s`` and every reply must come within ``read_s`` (so a half-open
  socket raises instead of hanging); a blocking read must block for less than ``read_s``. Each attempt of a call
  runs inside what is left of the reconnect budget, retries back off exponentially, and the call raises
  :class:`~common.errors.BusUnavailable` once the budget is spent: no call outlives the budget.
- Retries: a publish whose reply was lost is sent again, so an entry may be stored twice; consumers that count
  entries de-duplicate by the entry's natural key (frames by ``seq``, task scores by ``Score.key``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.errors import BusUnavailable, DecodeError
from common.messages import DeadLetter, Message
from common.settings import CommonSettings
from common.streams import DEADLETTER, StreamSpec

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
T = TypeVar("T")
Policy = Literal["dead_letter", "skip"]
Raw = tuple[str, str, dict[bytes, bytes] | None]  # key, entry id, fields (None: trimmed while pending)

_TRANSIENT = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


@dataclasses.dataclass(frozen=True)
class Delivery(Generic[M]):
    """One decoded entry of stream ``spec`` (session ``sid``) with its Redis id."""

    spec: StreamSpec[Any]
    sid: str | None
    id: str
    message: M

    @property
    def stream(self) -> str:
        return self.spec.key(self.sid)


@dataclasses.dataclass
class BusStats:
    """Counters a service reports in its Health entries (drops and failures are visible, never silent)."""

    published: int = 0
    refused: int = 0  # writes to a session's stream that is gone (the session ended)
    consumed: int = 0
    acked: int = 0
    reclaimed: int = 0
    dead_lettered: int = 0
    skipped: int = 0  # undecodable entries passed over by plain reads
    reconnects: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Bounded exponential backoff for reconnects."""

    first_s: float = 0.05
    cap_s: float = 2.0
    budget_s: float = 30.0


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Socket timeouts: TCP connect, and the wait for each reply."""

    connect_s: float = 2.0
    read_s: float = 5.0


class Bus:
    """A Redis stream bus for one process. Create with :meth:`connect`, close with :meth:`close`."""

    def __init__(self, client: aioredis.Redis, *, backoff: Backoff, timeouts: Timeouts, name: str) -> None:
        self._r = client
        self._backoff = backoff
        self.timeouts = timeouts
        self.name = name
        self.stats = BusStats()
        self._groups: set[tuple[str, str]] = set()
        self._scripts: dict[str, str] = {}  # sha1 -> source

    @classmethod
    async def connect(
        cls, url: str, *, name: str = "feqa", backoff: Backoff | None = None, timeouts: Timeouts | None = None
    ) -> Bus:
        """Connect to ``url`` and check it answers (within the backoff budget)."""
        t = timeouts or Timeouts()
        client = aioredis.Redis.from_url(
            url,
            decode_responses=False,
            socket_connect_timeout=t.connect_s,
            socket_timeout=t.read_s,
            health_check_interval=0,
            retry=Retry(NoBackoff(), 0),
            client_name=name,
        )
        bus = cls(client, backoff=backoff or Backoff(), timeouts=t, name=name)
        await bus.ping()
        return bus

    @classmethod
    async def from_settings(cls, common: CommonSettings, name: str) -> Bus:
        """Connect with the shared settings (URL, reconnect budget, socket timeouts)."""
        return await cls.connect(
            common.redis_url,
            name=name,
            backoff=Backoff(budget_s=common.reconnect_budget_s),
            timeouts=Timeouts(common.redis_connect_timeout_s, common.redis_socket_timeout_s),
        )

    async def close(self) -> None:
        await self._r.aclose()

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------------------------ plumbing

    async def run(self, what: str, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run ``op(client)`` with reconnects inside the budget (for the session-state and lease modules)."""
        deadline = time.monotonic() + self._backoff.budget_s
        delay = self._backoff.first_s
        while True:
            try:
                async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                    return await op(self._r)
            except _TRANSIENT as exc:  # the budget's own timeout is a TimeoutError, an OSError: caught here too
                if time.monotonic() + delay > deadline:
                    raise BusUnavailable(
                        f"Redis unreachable for {self._backoff.budget_s:g} s during {what}: {exc!r}; "
                        "check FEQA_REDIS_URL and that the server is running"
                    ) from exc
                self.stats.reconnects += 1
                log.warning("redis unavailable during %s (%r); retrying in %.2f s", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff.cap_s)

    async def script(self, what: str, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a Lua script by its SHA (loaded on first use and again after a Redis restart forgot it)."""
        sha = self._sha(source)

        async def op(r: aioredis.Redis) -> Any:
            try:
                return await r.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                await r.script_load(source)
                return await r.evalsha(sha, len(keys), *keys, *args)

        return await self.run(what, op)

    def _sha(self, source: str) -> str:
        sha = hashlib.sha1(source.encode()).hexdigest()
        self._scripts.setdefault(sha, source)
        return sha

    async def ping(self) -> None:
        await self.run("ping", lambda r: r.ping())

    def _check_block(self, block_ms: int | None) -> None:
        if block_ms and block_ms / 1000 >= self.timeouts.read_s:
            raise ValueError(
                f"a read blocking {block_ms} ms needs a socket read timeout above it (read_s={self.timeouts.read_s})"
            )

    # ------------------------------------------------------------------------------------------ publish

    async def publish(self, spec: StreamSpec[M], message: M, sid: str | None = None) -> str | None:
        """Append ``message``; return its id, or None when it is a session's stream and that is gone (ended)."""
        return (await self.publish_many(spec, [message], sid=sid))[0]

    async def publish_many(
        self, spec: StreamSpec[M], messages: Sequence[M], sid: str | None = None
    ) -> list[str | None]:
        """Append several messages in one round trip (ids in order; None where refused)."""
        if not messages:
            return []
        keys = []
        for m in messages:
            if not isinstance(m, spec.message):
                raise TypeError(f"stream {spec.template} carries {spec.message.__name__}, not {type(m).__name__}")
            keys.append(spec.key(_sid_of(spec, m, sid)) if spec.per_session else spec.key())

        async def op(r: aioredis.Redis) -> list[Any]:
            if len(messages) == 1:  # one command: no pipeline machinery
                return [await r.xadd(keys[0], dict[Any, Any](messages[0].encode()), maxlen=spec.maxlen,
                                     approximate=spec.approximate, nomkstream=spec.session_bound)]  # fmt: skip
            pipe = r.pipeline(transaction=False)
            for key, m in zip(keys, messages, strict=True):
                pipe.xadd(key, dict[Any, Any](m.encode()), maxlen=spec.maxlen, approximate=spec.approximate,
                          nomkstream=spec.session_bound)  # fmt: skip
            return list(await pipe.execute())

        ids: list[Any] = await self.run(f"publish to {spec.template}", op)
        refused = sum(1 for i in ids if i is None)
        self.stats.published += len(ids) - refused
        self.stats.refused += refused
        return [None if i is None else _text(i) for i in ids]

    # ------------------------------------------------------------------------------------------ groups

    async def ensure_group(self, spec: StreamSpec[Any], sid: str | None = None, start_id: str = "0") -> bool:
        """Create the spec's consumer group unless it exists; False when a session's stream is gone (it ended).

        Other streams are created with their group; a session's streams only ever at the session's start."""
        key, group = spec.key(sid), _group(spec)

        async def op(r: aioredis.Redis) -> bool:
            try:
                await r.xgroup_create(key, group, id=start_id, mkstream=not spec.session_bound)
            except ResponseError as exc:
                if "BUSYGROUP" in str(exc):
                    return True
                if spec.session_bound and "requires the key to exist" in str(exc):
                    return False
                raise
            return True

        made = await self.run(f"create group {group} on {key}", op)
        if made:
            self._groups.add((key, group))
        return made

    async def consume(
        self,
        spec: StreamSpec[M],
        sids: Sequence[str | None],
        consumer: str,
        *,
        count: int = 16,
        block_ms: int | None = 1000,
    ) -> list[Delivery[M]]:
        """Read new entries of the sessions' streams for the spec's group; undecodable ones are dead-lettered."""
        self._check_block(block_ms)
        if not sids:
            if block_ms:
                await asyncio.sleep(block_ms / 1000)
            return []
        group = _group(spec)
        keys = {spec.key(s): s for s in sids}
        for key, s in list(keys.items()):
            if (key, group) not in self._groups and not await self.ensure_group(spec, s):
                del keys[key]  # the session's stream is gone: nothing to read

        async def op(r: aioredis.Redis) -> Any:
            try:
                if keys:
                    return await r.xreadgroup(group, consumer, dict.fromkeys(keys, ">"), count=count, block=block_ms)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # A group (or its stream) vanished: a session's stream deleted at its end, or Redis restarted
                # without persistence. Recreate what may be recreated and read the rest.
                log.warning("consumer group %s missing on %s; recreating it", group, ",".join(keys))
                for key, s in list(keys.items()):
                    self._groups.discard((key, group))
                    if not await self.ensure_group(spec, s):
                        del keys[key]
                if keys:
                    return await r.xreadgroup(group, consumer, dict.fromkeys(keys, ">"), count=count, block=block_ms)
            if block_ms:
                await asyncio.sleep(block_ms / 1000)
            return None

        raw = _flatten(await self.run(f"read group {group}", op))
        out = await self._decode(spec, keys, raw, "dead_letter", consumer)
        self.stats.consumed += len(out)
        return out

    async def ack(self, deliveries: Iterable[Delivery[Any]]) -> int:
        """Acknowledge processed deliveries (grouped per stream, one round trip)."""
        by_key: dict[tuple[str, str], list[str]] = {}
        for d in deliveries:
            by_key.setdefault((d.stream, _group(d.spec)), []).append(d.id)
        if not by_key:
            return 0

        async def op(r: aioredis.Redis) -> list[Any]:
            if len(by_key) == 1:
                ((key, group), ids), *_ = by_key.items()
                return [await r.xack(key, group, *ids)]
            pipe = r.pipeline(transaction=False)
            for (key, group), ids in by_key.items():
                pipe.xack(key, group, *ids)
            return list(await pipe.execute())

        n = sum(int(x) for x in await self.run("ack", op))
        self.stats.acked += n
        return n

    async def dead_letter(
        self, delivery: Delivery[Any] | Raw, spec: StreamSpec[Any], error: str, consumer: str
    ) -> None:
        """Copy an entry whole to the dead-letter stream with ``error``, then ack it in the spec's group."""
        if isinstance(delivery, Delivery):
            key, entry_id, fields = delivery.stream, delivery.id, delivery.message.encode()
        else:
            key, entry_id, fields = delivery[0], delivery[1], delivery[2] or {}
        log.error("dead-lettering %s %s (%s): %s", key, entry_id, consumer, error)
        letter = DeadLetter(stream=key, entry_id=entry_id, error=error, consumer=f"{_group(spec)}/{consumer}",
                            ts=time.time(), original=DeadLetter.pack_fields(fields))  # fmt: skip
        await self.publish(DEADLETTER, letter)
        await self._ack_raw(key, _group(spec), [entry_id])
        self.stats.dead_lettered += 1

    async def _ack_raw(self, key: str, group: str, ids: Sequence[str]) -> None:
        n = await self.run(f"ack {key}", lambda r: r.xack(key, group, *ids))
        self.stats.acked += int(n)

    async def reclaim(
        self, spec: StreamSpec[M], sid: str | None, consumer: str, *, min_idle_ms: int, count: int = 64
    ) -> list[Delivery[M]]:
        """Take over entries another consumer left pending for at least ``min_idle_ms``."""
        key, group = spec.key(sid), _group(spec)
        if (key, group) not in self._groups and not await self.ensure_group(spec, sid):
            return []

        async def op(r: aioredis.Redis) -> list[Raw]:
            # JUSTID claims the ids on both 6.2 and 7.x; entries trimmed while pending then read back as missing
            # (6.2 would otherwise hand back nil entries without their ids) and are acked below.
            reply = await r.xautoclaim(
                key, group, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count, justid=True
            )
            if reply and any(isinstance(part, list) for part in reply):  # a raw reply: [next, ids, (deleted)]
                reply = reply[1]
            ids = [_text(i) for i in reply or []]
            if not ids:
                return []
            pipe = r.pipeline(transaction=False)
            for entry_id in ids:
                pipe.xrange(key, min=entry_id, max=entry_id)
            found = await pipe.execute()
            return [(key, i, rows[0][1] if rows else None) for i, rows in zip(ids, found, strict=True)]

        raw = await self.run(f"reclaim {key}", op)
        out = await self._decode(spec, {key: sid}, raw, "dead_letter", consumer)
        self.stats.reclaimed += len(out)
        return out

    async def pending_count(self, spec: StreamSpec[Any], sid: str | None = None) -> int:
        """How many entries of the spec's group are delivered but not acked."""
        key, group = spec.key(sid), _group(spec)
        info = await self.run(f"pending {key}", lambda r: r.xpending(key, group))
        return int(info["pending"]) if isinstance(info, dict) else int(info[0])

    async def group_backlog(self, spec: StreamSpec[Any], sid: str | None = None, *, limit: int = 10_000) -> int | None:
        """Entries the spec's group has not acked (pending + not yet delivered, counted up to ``limit``).

        ``None`` when nobody reads it (no stream, no group, or a group no consumer has read from yet), so there is
        no backlog to wait for. Producers that must not outrun a consumer (recorded-video ingest) poll this.
        """
        key, group = spec.key(sid), _group(spec)

        async def op(r: aioredis.Redis) -> int | None:
            try:
                groups = await r.xinfo_groups(key)
            except ResponseError:
                return None
            for info in groups:
                row = {_text(k): v for k, v in info.items()}
                if _text(row["name"]) == group and int(row["consumers"]):
                    after = await r.xrange(key, min="(" + _text(row["last-delivered-id"]), count=limit)
                    return int(row["pending"]) + len(after or [])
            return None

        return await self.run(f"backlog {key}", op)

    # ------------------------------------------------------------------------------------------ reads

    async def latest(self, spec: StreamSpec[M], sid: str | None, count: int) -> list[Delivery[M]]:
        """The newest ``count`` entries, oldest first (undecodable ones skipped and counted)."""
        key = spec.key(sid)
        entries = await self.run(f"latest {key}", lambda r: r.xrevrange(key, count=count))
        return await self._decode(spec, {key: sid}, _rows(key, reversed(entries or [])), "skip")

    async def range(
        self, spec: StreamSpec[M], sid: str | None = None, start: str = "-", end: str = "+", count: int | None = None
    ) -> list[Delivery[M]]:
        """Entries between ids ``start`` and ``end`` (inclusive), oldest first."""
        key = spec.key(sid)
        entries = await self.run(f"range {key}", lambda r: r.xrange(key, min=start, max=end, count=count))
        return await self._decode(spec, {key: sid}, _rows(key, entries or []), "skip")

    async def tail(
        self,
        cursors: Mapping[tuple[StreamSpec[Any], str | None], str],
        *,
        count: int = 100,
        block_ms: int | None = None,
    ) -> list[Delivery[Message]]:
        """Fan-out read (no group) after the given ids; callers advance their cursors to the returned ids."""
        self._check_block(block_ms)
        specs = {spec.key(s): (spec, s) for spec, s in cursors}
        streams: dict[Any, Any] = {spec.key(s): cur for (spec, s), cur in cursors.items()}
        reply = await self.run("tail", lambda r: r.xread(streams, count=count, block=block_ms))
        out: list[Delivery[Message]] = []
        for key, entry_id, fields in _flatten(reply):
            spec, s = specs[key]
            out.extend(await self._decode(spec, {key: s}, [(key, entry_id, fields)], "skip"))
        return out

    async def length(self, spec: StreamSpec[Any], sid: str | None = None) -> int:
        key = spec.key(sid)
        return int(await self.run(f"length {key}", lambda r: r.xlen(key)))

    async def _decode(
        self,
        spec: StreamSpec[M],
        sids: Mapping[str, str | None],
        raw: Iterable[Raw],
        policy: Policy,
        consumer: str = "",
    ) -> list[Delivery[M]]:
        """The one decode path: entries as the spec's message; bad ones dead-lettered or skipped per ``policy``."""
        out: list[Delivery[M]] = []
        for key, entry_id, fields in raw:
            if fields is None:  # trimmed while pending: nothing left to process
                if policy == "dead_letter":
                    await self._ack_raw(key, _group(spec), [entry_id])
                continue
            try:
                out.append(Delivery(spec, sids[key], entry_id, spec.message.decode(fields)))
            except DecodeError as exc:
                if policy == "dead_letter":
                    await self.dead_letter((key, entry_id, fields), spec, str(exc), consumer)
                else:
                    self.stats.skipped += 1
                    log.error("skipping undecodable entry %s %s: %s", key, entry_id, exc)
        return out


def _sid_of(spec: StreamSpec[Any], message: Message, sid: str | None) -> str:
    found = sid or getattr(message, "sid", None)
    if not found:
        raise ValueError(f"stream {spec.template} needs a session id")
    return str(found)


def _group(spec: StreamSpec[Any]) -> str:
    if spec.group is None:
        raise ValueError(f"stream {spec.template} has no consumer group")
    return spec.group


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _rows(key: str, entries: Iterable[Any]) -> list[Raw]:
    return [(key, _text(entry_id), fields) for entry_id, fields in entries]


def _flatten(reply: Any) -> list[Raw]:
    out: list[Raw] = []
    if not reply:
        return out
    items = reply.items() if isinstance(reply, dict) else reply  # RESP3 gives a dict, RESP2 a list
    for key, entries in items:
        if isinstance(entries, list) and entries and isinstance(entries[0], list) and len(entries) == 1:
            entries = entries[0]
        for entry_id, fields in entries:
            out.append((_text(key), _text(entry_id), fields))
    return out
