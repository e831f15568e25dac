"""Live fan-out with backpressure: one reader tails the streams of every watched session, each websocket client has
its own bounded queue.

- The reader (:meth:`Hub.run`) does one ``XREAD`` over ``scores:{sid}``, ``events:{sid}`` and ``coach:{sid}`` of all
  watched sessions, encodes each entry to JSON once, and puts it on the queue of every client watching it. Putting
  never waits: a full queue drops its oldest entry and counts it, so a slow client loses old points and never holds
  up the reader or the other clients.
- Each client's sender (:func:`pump`) drains its queue in batches (one websocket frame per batch) and tells the
  client how many entries it lost.
- Stream ids are the cursors: a client watching a session sends the last id it saw per stream and first gets what
  it missed (:meth:`Hub.replay`, read from Redis), then the live entries; a per-stream cursor on the client object
  skips anything already sent, so replay and live never duplicate or leave a gap.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from common.bus import Bus, Delivery
from common.messages import Message
from common.streams import COACH, EVENTS, SCORES, StreamSpec

log = logging.getLogger(__name__)

# what a live view follows per session: (name in the client protocol, stream, entries replayed to a fresh watch)
FEEDS: tuple[tuple[str, StreamSpec[Any], int], ...] = (
    ("score", SCORES, 2000),
    ("event", EVENTS, 200),
    ("coach", COACH, 5),
)
_FEED_OF_PREFIX = {spec.template.split("{")[0]: name for name, spec, _ in FEEDS}


def id_tuple(entry_id: str) -> tuple[int, int]:
    """A stream id as a comparable pair (``"0-0"`` for none)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def feed_of(key: str) -> str:
    return _FEED_OF_PREFIX[key.split("{")[0]]


def sid_of(key: str) -> str:
    return key[key.index("{") + 1 : key.index("}")]


def message_json(message: Message) -> dict[str, Any]:
    return {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}  # type: ignore[arg-type]


def encode_entry(key: str, entry_id: str, message: Message) -> str:
    """The JSON text of one entry as clients receive it."""
    body = {"t": feed_of(key), "sid": sid_of(key), "id": entry_id, "d": message_json(message)}
    return json.dumps(body, separators=(",", ":"), allow_nan=False, default=str)


@dataclasses.dataclass(frozen=True)
class Item:
    key: str  # "" for messages that are not stream entries (health)
    entry_id: str
    text: str


class Client:
    """One websocket client: a bounded queue (oldest dropped when full) and the last id sent per stream."""

    def __init__(self, maxlen: int, name: str = "") -> None:
        self.name = name
        self.maxlen = maxlen
        self._queue: collections.deque[Item] = collections.deque()
        self._ready = asyncio.Event()
        self.dropped = 0
        self.reported_dropped = 0
        self.sent = 0
        self.cursors: dict[str, tuple[int, int]] = {}
        self.watching: set[str] = set()
        self._held: dict[str, collections.deque[Item]] = {}

    def hold(self, key: str) -> None:
        """Keep live entries of ``key`` aside while its replay is read, so they queue after it, in id order."""
        self._held.setdefault(key, collections.deque(maxlen=self.maxlen))

    def release(self, key: str) -> None:
        self.put_many(self._held.pop(key, ()))

    def put_live(self, item: Item) -> None:
        held = self._held.get(item.key)
        if held is None:
            self.put(item)
        else:
            if len(held) == held.maxlen:
                self.dropped += 1
            held.append(item)

    def put(self, item: Item) -> None:
        if len(self._queue) >= self.maxlen:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(item)
        self._ready.set()

    def put_many(self, items: Iterable[Item]) -> None:
        for item in items:
            self.put(item)

    async def take(self) -> list[Item]:
        """Everything queued, waiting until there is something."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        items = list(self._queue)
        self._queue.clear()
        return items

    def fresh(self, item: Item) -> bool:
        """Whether ``item`` is newer than what this client was sent from its stream (and mark it sent)."""
        if not item.key:
            return True
        pos = id_tuple(item.entry_id)
        if pos <= self.cursors.get(item.key, (0, 0)):
            return False
        self.cursors[item.key] = pos
        return True

    def __len__(self) -> int:
        return len(self._queue)


@dataclasses.dataclass
class HubStats:
    read: int = 0
    delivered: int = 0
    dropped: int = 0
    replayed: int = 0
    clients: int = 0


class Hub:
    """The reader and the watch table. :meth:`run` until cancelled."""

    def __init__(self, bus: Bus, *, replay_max: int = 2000, block_ms: int = 200, count: int = 500) -> None:
        self.bus = bus
        self.replay_max = replay_max
        self.block_ms = block_ms
        self.count = count
        self._cursors: dict[str, str] = {}
        self._streams: dict[str, tuple[StreamSpec[Any], str | None]] = {}
        self._watchers: dict[str, set[Client]] = collections.defaultdict(set)
        self._clients: set[Client] = set()
        self._changed = asyncio.Event()
        self.stats = HubStats()

    # ------------------------------------------------------------------------------------------ clients

    def add(self, client: Client) -> None:
        self._clients.add(client)
        self.stats.clients = len(self._clients)

    def remove(self, client: Client) -> None:
        for sid in list(client.watching):
            self.unwatch(client, sid)
        self._clients.discard(client)
        self.stats.dropped += client.dropped
        self.stats.clients = len(self._clients)

    @property
    def clients(self) -> frozenset[Client]:
        return frozenset(self._clients)

    async def watch(self, client: Client, sid: str, after: dict[str, str] | None = None) -> None:
        """Start sending ``sid``'s feeds to ``client``: what it missed since ``after`` (fresh history when a feed has
        no cursor), then live entries."""
        keys = [spec.key(sid) for _, spec, _ in FEEDS]
        for key in keys:
            client.hold(key)
        try:
            for (_name, spec, _), key in zip(FEEDS, keys, strict=True):
                if key not in self._cursors:
                    newest = await self.bus.latest(spec, sid, 1)
                    self._cursors[key] = newest[-1].id if newest else "0-0"
                    self._streams[key] = (spec, sid)
                self._watchers[key].add(client)
            client.watching.add(sid)
            self._changed.set()
            await self.replay(client, sid, after or {})
        finally:
            for key in keys:
                client.release(key)

    def unwatch(self, client: Client, sid: str) -> None:
        client.watching.discard(sid)
        for _name, spec, _ in FEEDS:
            key = spec.key(sid)
            watchers = self._watchers.get(key)
            if watchers is None:
                continue
            watchers.discard(client)
            client.cursors.pop(key, None)
            if not watchers:
                del self._watchers[key]
                self._cursors.pop(key, None)
                self._streams.pop(key, None)

    async def replay(self, client: Client, sid: str, after: dict[str, str]) -> None:
        for name, spec, fresh_n in FEEDS:
            key = spec.key(sid)
            cursor = after.get(name)
            gap = False
            if cursor:
                id_tuple(cursor)  # refuse a malformed cursor before Redis sees it
                got = await self.bus.range(spec, sid, "(" + cursor, "+", count=self.replay_max + 1)
                if len(got) > self.replay_max:
                    got = await self.bus.latest(spec, sid, self.replay_max)
                    gap = True
                client.cursors[key] = max(client.cursors.get(key, (0, 0)), id_tuple(cursor))
            else:
                got = await self.bus.latest(spec, sid, min(fresh_n, self.replay_max))
            items = [Item(key, d.id, encode_entry(key, d.id, d.message)) for d in got]
            if gap:
                note = {"t": "gap", "sid": sid, "feed": name, "note": "older entries than the replay limit skipped"}
                client.put(Item("", "", json.dumps(note)))
            client.put_many(items)
            self.stats.replayed += len(items)

    def broadcast(self, text: str) -> None:
        """Put a non-stream message (health) on every client's queue."""
        item = Item("", "", text)
        for client in self._clients:
            client.put(item)

    # ------------------------------------------------------------------------------------------ reader

    async def run(self) -> None:
        while True:
            if not self._cursors:
                self._changed.clear()
                await self._changed.wait()
                continue
            cursors = {self._streams[key]: cursor for key, cursor in self._cursors.items()}
            deliveries = await self.bus.tail(cursors, count=self.count, block_ms=self.block_ms)
            self.dispatch(deliveries)

    def dispatch(self, deliveries: Iterable[Delivery[Message]]) -> None:
        for d in deliveries:
            if d.stream not in self._cursors:
                continue  # nobody watches it any more
            self._cursors[d.stream] = d.id
            self.stats.read += 1
            watchers = self._watchers.get(d.stream)
            if not watchers:
                continue
            item = Item(d.stream, d.id, encode_entry(d.stream, d.id, d.message))
            for client in watchers:
                client.put_live(item)


async def pump(client: Client, send: Callable[[str], Awaitable[None]], hub: Hub) -> None:
    """Send ``client``'s queue in batches until ``send`` fails (the socket closed) or the task is cancelled."""
    while True:
        items = [item for item in await client.take() if client.fresh(item)]
        parts = [item.text for item in items]
        if client.dropped > client.reported_dropped:
            client.reported_dropped = client.dropped
            parts.append(json.dumps({"t": "dropped", "n": client.dropped}))
        if not parts:
            continue
        await send('{"t":"batch","items":[' + ",".join(parts) + "]}")
        client.sent += len(items)
        hub.stats.delivered += len(items)
