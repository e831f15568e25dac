"""Liveness of the ingest behind each live session, so a session whose ingest died is ended by someone else.

Design: the ingest process that serves a session (a WebRTC peer or a file job) holds the session's
``ingest-lease:{sid}`` (common.leases) from before the session goes live until it ends, and renews all its leases
every third of ``ttl_ms`` (:class:`IngestLiveness`, one per ingest process). A session is listed in ``feqa:live``
while it is live. Sweepers (every ingest process, and every tracker worker) call :func:`sweep` periodically: a
listed session whose ingest lease has expired is ended with reason ``ingest_lost``, which deletes its frames and
crops at once like any other end (common.session_store). Ending is atomic and first-reason-wins, so any number of
sweepers may run.

An ingest that stalled past its TTL (not dead) finds on its next renewal that the lease is gone; it must stop
serving the session (the session may already have been ended by a sweeper; its own late end is then a no-op). The
bus refuses frames of an ended session, so a stalled ingest cannot bring them back either.
"""

from __future__ import annotations

import asyncio
import logging

from common.bus import Bus
from common.errors import DecodeError, RetryableError
from common.leases import Leases
from common.logs import session_logger
from common.session_store import SessionStore

log = logging.getLogger(__name__)

LOST = "ingest_lost"


class LeaseTaken(RetryableError):
    """Another ingest serves this session."""


class IngestLiveness:
    """The ingest leases one ingest process holds; run :meth:`run` as a task (or call :meth:`renew`)."""

    def __init__(self, bus: Bus, owner: str, ttl_ms: int) -> None:
        self.leases = Leases(bus, "ingest")
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.held: set[str] = set()

    @property
    def renew_every_s(self) -> float:
        return self.ttl_ms / 3000

    async def claim(self, sid: str) -> None:
        """Hold a session's lease before it goes live; :class:`LeaseTaken` when another ingest holds it."""
        if not await self.leases.hold(sid, self.owner, self.ttl_ms):
            raise LeaseTaken(f"session {sid} is served by another ingest ({await self.leases.holder(sid)})")
        self.held.add(sid)

    async def release(self, sid: str) -> None:
        if sid in self.held:
            self.held.discard(sid)
            await self.leases.release(sid, self.owner)

    async def renew(self) -> list[str]:
        """Renew every held lease; return (and forget) the sessions whose lease was lost."""
        lost = [sid for sid in sorted(self.held) if not await self.leases.renew(sid, self.owner, self.ttl_ms)]
        for sid in lost:
            self.held.discard(sid)
            session_logger(log, sid).warning("ingest lease lost (this process stalled past %d ms)", self.ttl_ms)
        return lost

    async def run(self, on_lost: asyncio.Queue[str] | None = None) -> None:
        """Renew until cancelled; lost sessions are put on ``on_lost`` (bounded by the held sessions)."""
        while True:
            await asyncio.sleep(self.renew_every_s)
            for sid in await self.renew():
                if on_lost is not None:
                    on_lost.put_nowait(sid)


async def sweep(store: SessionStore) -> list[str]:
    """End every live-listed session whose ingest lease expired (reason ``ingest_lost``); return those ended."""
    listed = await store.live()
    if not listed:
        return []
    held = await Leases(store.bus, "ingest").held(listed)
    ended: list[str] = []
    for sid in listed:
        if held[sid]:
            continue
        try:
            info = await store.get(sid)
        except DecodeError as exc:  # not a session hash we can read: end it all the same (its media go)
            session_logger(log, sid).error("unreadable session hash while sweeping: %s", exc)
            info = None
        if info is not None and info.ended:
            await store.unlist(sid)
            continue
        if await store.end(sid, LOST):  # also purges the media of a session whose hash is gone, and unlists it
            session_logger(log, sid).warning("ingest lost: no ingest renewed the session's lease; ended it")
            ended.append(sid)
    return ended
