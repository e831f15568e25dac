"""The asyncio Redis stream bus: the only code in feqa that calls XADD, XREADGROUP, XACK and XAUTOCLAIM.

Every call names a stream by its :class:`~common.streams.StreamSpec` and session id (never a raw key); the spec's
message type decodes what is read. ``publish`` appends with the stream's MAXLEN; a session's streams are written
with XADD NOMKSTREAM, so a write after the session's end deleted or expired them is refused (None, counted), never
a purged stream recreated. ``consume`` reads in the spec's consumer group (made when missing), ``reclaim`` takes
over what a dead consumer left pending (XAUTOCLAIM, 6.2 and 7.x replies), ``latest``/``range``/``tail`` read
without a group. One decode path with a policy: an undecodable entry is dead-lettered (kept whole on
``feqa:deadletter`` with the error, then acked) on group reads, skipped with a log line and a count on plain
reads; consumers refuse entries for their own reasons with :meth:`Bus.dead_letter`. Every call is retried within
a budget under socket timeouts (common.retry); a retried publish may store an entry twice, so counting consumers
de-duplicate (common.dedupe).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from common.entries import BusStats as BusStats
from common.entries import Delivery as Delivery
from common.entries import Raw, flatten, rows, text
from common.errors import DecodeError
from common.messages import DeadLetter, Message
from common.retry import TRANSIENT, first_attempt_fits, redis_client, with_retry
from common.retry import Backoff as Backoff
from common.retry import Timeouts as Timeouts
from common.settings import CommonSettings
from common.streams import DEADLETTER, StreamSpec

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
T = TypeVar("T")
Policy = Literal["dead_letter", "skip"]


class Bus:
    """A Redis stream bus for one process. Create with :meth:`connect`, close with :meth:`close`."""

    def __init__(self, client: aioredis.Redis, *, backoff: Backoff, timeouts: Timeouts, name: str) -> None:
        self._r = client
        self._backoff = backoff
        self.timeouts = timeouts
        self._first_fits = first_attempt_fits(backoff, timeouts)
        self.name = name
        self.stats = BusStats()
        self._groups: set[tuple[str, str]] = set()

    @classmethod
    async def connect(
        cls, url: str, *, name: str = "feqa", backoff: Backoff | None = None, timeouts: Timeouts | None = None
    ) -> Bus:
        """Connect to ``url`` and check it answers (within the backoff budget)."""
        t = timeouts or Timeouts()
        bus = cls(redis_client(url, name, t), backoff=backoff or Backoff(), timeouts=t, name=name)
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

    async def run(self, what: str, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run ``op(client)`` with retries inside the budget (for the session-state and lease modules)."""
        if self._first_fits:  # the socket timeouts bound this attempt inside the budget: no timer needed
            started = time.monotonic()
            try:
                return await op(self._r)
            except TRANSIENT as exc:
                return await with_retry(what, lambda: op(self._r), self._backoff, self._count_reconnect,
                                        started=started, failed=exc)  # fmt: skip
        return await with_retry(what, lambda: op(self._r), self._backoff, self._count_reconnect)

    def _count_reconnect(self) -> None:
        self.stats.reconnects += 1

    async def ping(self) -> None:
        await self.run("ping", lambda r: r.ping())

    def _check_block(self, block_ms: int | None) -> None:
        if block_ms and block_ms / 1000 >= self.timeouts.read_s:
            raise ValueError(
                f"a read blocking {block_ms} ms needs a socket read timeout above it (read_s={self.timeouts.read_s})"
            )

    async def publish(self, spec: StreamSpec[M], message: M, sid: str | None = None) -> str | None:
        """Append ``message``; return its id, or None when it is a session's stream and that is gone (ended)."""
        key = _key_for(spec, message, sid)
        fields: dict[Any, Any] = message.encode()
        entry = await self.run(
            "publish", lambda r: r.xadd(key, fields, maxlen=spec.maxlen, approximate=spec.approximate,
                                        nomkstream=spec.session_bound)
        )  # fmt: skip
        if entry is None:
            self.stats.refused += 1
            return None
        self.stats.published += 1
        return text(entry)

    async def publish_many(
        self, spec: StreamSpec[M], messages: Sequence[M], sid: str | None = None
    ) -> list[str | None]:
        """Append several messages in one round trip (ids in order; None where refused)."""
        if not messages:
            return []
        keys = [_key_for(spec, m, sid) for m in messages]
        if len(messages) == 1:  # one command: no pipeline machinery
            return [await self.publish(spec, messages[0], sid)]

        async def op(r: aioredis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for key, m in zip(keys, messages, strict=True):
                pipe.xadd(key, dict[Any, Any](m.encode()), maxlen=spec.maxlen, approximate=spec.approximate,
                          nomkstream=spec.session_bound)  # fmt: skip
            return list(await pipe.execute())

        ids: list[Any] = await self.run(f"publish to {spec.template}", op)
        refused = sum(1 for i in ids if i is None)
        self.stats.published += len(ids) - refused
        self.stats.refused += refused
        return [None if i is None else text(i) for i in ids]

    async def commit(
        self, writes: Sequence[tuple[StreamSpec[Any], Sequence[Message]]], acks: Iterable[Delivery[Any]] = ()
    ) -> list[list[str | None]]:
        """Append every group of messages (each to its spec's stream), then acknowledge ``acks``, in one MULTI/EXEC
        round trip: what was made of the acked entries and their acks land together or not at all (a lost
        connection, or a write Redis refuses while queueing, e.g. out of memory, applies none of it), so an entry is
        never acked without its output (at least once). A retry after a lost EXEC reply may store the writes twice
        (consumers de-duplicate). Returns each group's ids in order, None where a session's stream is gone.

        Every key of one session shares its ``{sid}`` hash tag; with a Redis Cluster client this becomes one
        transaction per session (slot)."""
        groups = [(spec, [_key_for(spec, m, None) for m in messages], messages) for spec, messages in writes]
        by_key = _by_stream(acks)
        n_writes = sum(len(keys) for _, keys, _ in groups)
        if not n_writes and not by_key:
            return [[] for _ in groups]

        async def op(r: aioredis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=True)
            for spec, keys, messages in groups:
                for key, m in zip(keys, messages, strict=True):
                    pipe.xadd(key, dict[Any, Any](m.encode()), maxlen=spec.maxlen, approximate=spec.approximate,
                              nomkstream=spec.session_bound)  # fmt: skip
            for (key, group), ids in by_key.items():
                pipe.xack(key, group, *ids)
            return list(await pipe.execute())

        replies = await self.run("commit", op)
        out: list[list[str | None]] = []
        at = 0
        for _, keys, _ in groups:
            out.append([None if i is None else text(i) for i in replies[at : at + len(keys)]])
            at += len(keys)
        refused = sum(ids.count(None) for ids in out)
        self.stats.published += n_writes - refused
        self.stats.refused += refused
        self.stats.acked += sum(int(x) for x in replies[at:])
        return out

    async def ensure_group(self, spec: StreamSpec[Any], sid: str | None = None, start_id: str = "0") -> bool:
        """Create the spec's consumer group unless it exists; False when a session's stream is gone (it ended).

        Other streams are created with their group; a session's streams only ever at the session's start."""
        key, group = spec.key(sid), spec.consumer_group

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
        group = spec.consumer_group
        keys = await self._readable(spec, sids)

        async def op(r: aioredis.Redis) -> Any:
            nonlocal keys
            for attempt in (0, 1):
                if not keys:
                    break
                try:
                    return await r.xreadgroup(group, consumer, dict.fromkeys(keys, ">"), count=count, block=block_ms)
                except ResponseError as exc:
                    if not any(m in str(exc) for m in ("NOGROUP", "UNBLOCKED")):
                        raise
                    if attempt:  # another of the streams went while the retry waited: nothing to read this time
                        break
                # A group vanished: its session's stream was deleted at the end (Redis 7 also unblocks a read
                # waiting on it with UNBLOCKED), or Redis restarted without persistence. Recreate what may be
                # recreated and read the rest.
                log.warning("consumer group %s missing on %s; recreating it", group, ",".join(keys))
                self._groups.difference_update((k, group) for k in keys)
                keys = await self._readable(spec, list(keys.values()))
            if block_ms:
                await asyncio.sleep(block_ms / 1000)
            return None

        raw = flatten(await self.run(f"read group {group}", op))
        out = await self._decode(spec, keys, raw, "dead_letter", consumer)
        self.stats.consumed += len(out)
        return out

    def forget(self, spec: StreamSpec[Any], sid: str | None) -> None:
        """Drop what this bus remembers of a session's stream (its group was made): the session is gone."""
        if spec.group:
            self._groups.discard((spec.key(sid), spec.group))

    async def _readable(self, spec: StreamSpec[Any], sids: Sequence[str | None]) -> dict[str, str | None]:
        """The sessions' stream keys that have the spec's group (made where allowed); gone ones are left out."""
        out: dict[str, str | None] = {}
        for s in sids:
            if (spec.key(s), spec.consumer_group) in self._groups or await self.ensure_group(spec, s):
                out[spec.key(s)] = s
        return out

    async def ack(self, deliveries: Iterable[Delivery[Any]]) -> int:
        """Acknowledge processed deliveries (grouped per stream, one round trip)."""
        by_key = _by_stream(deliveries)
        if len(by_key) <= 1:
            return sum([await self._ack_raw(key, group, ids) for (key, group), ids in by_key.items()])

        async def op(r: aioredis.Redis) -> list[Any]:
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
        letter = DeadLetter(stream=key, entry_id=entry_id, error=error, consumer=f"{spec.consumer_group}/{consumer}",
                            ts=time.time(), original=DeadLetter.pack_fields(fields))  # fmt: skip
        await self.publish(DEADLETTER, letter)
        await self._ack_raw(key, spec.consumer_group, [entry_id])
        self.stats.dead_lettered += 1

    async def _ack_raw(self, key: str, group: str, ids: Sequence[str]) -> int:
        n = int(await self.run(f"ack {key}", lambda r: r.xack(key, group, *ids)))
        self.stats.acked += n
        return n

    async def reclaim(
        self, spec: StreamSpec[M], sid: str | None, consumer: str, *, min_idle_ms: int, count: int = 64
    ) -> list[Delivery[M]]:
        """Take over entries another consumer left pending for at least ``min_idle_ms``."""
        key, group = spec.key(sid), spec.consumer_group
        if not await self._readable(spec, [sid]):
            return []

        async def op(r: aioredis.Redis) -> list[Raw]:
            # JUSTID claims the ids on both 6.2 and 7.x; entries trimmed while pending then read back as missing
            # (6.2 would otherwise hand back nil entries without their ids) and are acked below.
            try:
                reply = await r.xautoclaim(
                    key, group, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count, justid=True
                )
            except ResponseError as exc:
                # The stream went since its group was made: the session ended (its frames are deleted then), or
                # Redis restarted. Nothing is pending there any more; the group is made again where allowed.
                if "NOGROUP" not in str(exc):
                    raise
                self._groups.discard((key, group))
                return []
            if reply and any(isinstance(part, list) for part in reply):  # a raw reply: [next, ids, (deleted)]
                reply = reply[1]
            ids = [text(i) for i in reply or []]
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

    async def latest(self, spec: StreamSpec[M], sid: str | None, count: int) -> list[Delivery[M]]:
        """The newest ``count`` entries, oldest first (undecodable ones skipped and counted)."""
        key = spec.key(sid)
        entries = await self.run(f"latest {key}", lambda r: r.xrevrange(key, count=count))
        return await self._decode(spec, {key: sid}, rows(key, reversed(entries or [])), "skip")

    async def range(
        self, spec: StreamSpec[M], sid: str | None = None, start: str = "-", end: str = "+", count: int | None = None
    ) -> list[Delivery[M]]:
        """Entries between ids ``start`` and ``end`` (inclusive), oldest first."""
        key = spec.key(sid)
        entries = await self.run(f"range {key}", lambda r: r.xrange(key, min=start, max=end, count=count))
        return await self._decode(spec, {key: sid}, rows(key, entries or []), "skip")

    async def tail(
        self,
        cursors: Mapping[tuple[StreamSpec[Any], str | None], str],
        *,
        count: int = 100,
        block_ms: int | None = None,
    ) -> list[Delivery[Message]]:
        """Fan-out read (no group) after the given ids; callers advance their cursors to the returned ids."""
        self._check_block(block_ms)
        streams: dict[Any, Any] = {spec.key(s): cur for (spec, s), cur in cursors.items()}
        reply = await self.run("tail", lambda r: r.xread(streams, count=count, block=block_ms))
        return await self._decode_tail(cursors, reply)

    async def poll(
        self,
        spec: StreamSpec[M],
        sids: Sequence[str | None],
        consumer: str,
        cursors: Mapping[tuple[StreamSpec[Any], str | None], str],
        *,
        count: int = 16,
        block_ms: int | None = 1000,
        tail_count: int = 100,
    ) -> tuple[list[Delivery[Message]], list[Delivery[M]]]:
        """:meth:`tail` (without waiting) and then :meth:`consume` in one round trip: the fan-out entries after
        ``cursors``, and the group's new entries of the sessions' streams (waiting up to ``block_ms`` for them)."""
        self._check_block(block_ms)
        group = spec.consumer_group
        keys = await self._readable(spec, sids)
        streams: dict[Any, Any] = {s.key(sid): cur for (s, sid), cur in cursors.items()}

        async def op(r: aioredis.Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            pipe.xread(streams, count=tail_count)
            if keys:
                pipe.xreadgroup(group, consumer, dict.fromkeys(keys, ">"), count=count, block=block_ms)
            return list(await pipe.execute(raise_on_error=False))

        replies = await self.run(f"poll {group}", op)
        for reply in replies[:1]:
            if isinstance(reply, Exception):
                raise reply
        tail = await self._decode_tail(cursors, replies[0])
        if not keys:
            if block_ms and not tail:
                await asyncio.sleep(block_ms / 1000)
            return tail, []
        read = replies[1]
        if isinstance(read, ResponseError) and any(m in str(read) for m in ("NOGROUP", "UNBLOCKED")):
            return tail, await self.consume(spec, sids, consumer, count=count, block_ms=None)  # remakes groups
        if isinstance(read, Exception):
            raise read
        out = await self._decode(spec, keys, flatten(read), "dead_letter", consumer)
        self.stats.consumed += len(out)
        return tail, out

    async def _decode_tail(
        self, cursors: Mapping[tuple[StreamSpec[Any], str | None], str], reply: Any
    ) -> list[Delivery[Message]]:
        specs = {spec.key(s): (spec, s) for spec, s in cursors}
        out: list[Delivery[Message]] = []
        for key, entry_id, fields in flatten(reply):
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
                    await self._ack_raw(key, spec.consumer_group, [entry_id])
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


def _key_for(spec: StreamSpec[Any], message: Message, sid: str | None) -> str:
    """The key a message goes to (its own sid unless one is given), after checking the stream carries its type."""
    if not isinstance(message, spec.message):
        raise TypeError(f"stream {spec.template} carries {spec.message.__name__}, not {type(message).__name__}")
    if not spec.per_session:
        return spec.key()
    found = sid or getattr(message, "sid", None)
    if not found:
        raise ValueError(f"stream {spec.template} needs a session id")
    return spec.key(str(found))


def _by_stream(deliveries: Iterable[Delivery[Any]]) -> dict[tuple[str, str], list[str]]:
    """Entry ids per (stream key, consumer group), for XACK."""
    by_key: dict[tuple[str, str], list[str]] = {}
    for d in deliveries:
        by_key.setdefault((d.stream, d.spec.consumer_group), []).append(d.id)
    return by_key
