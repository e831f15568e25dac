"""Session ownership for stateful consumers (tracker, scorer): one worker of a role holds a session at a time.

Each role (``tracker``, ``scorer``) has a lease per live session, ``<role>-lease:{sid}``, taken with SET NX PX and
renewed by its holder every third of ``ttl_ms``. The holder alone reads that session's per-session streams in the
role's consumer group, so the session's state (a face track, a per-frame feature cache) lives in one process.

- Sessions are learned from the ``feqa:sessions`` announcements (the caller feeds them in with :meth:`started` and
  :meth:`ended`).
- Load spreading: a worker that owns k sessions tries a free one only after it has seen it free for k rounds, so
  the least-loaded worker usually wins it. Owned sessions are not moved while their owner lives.
- A dead worker stops renewing; after at most ``ttl_ms`` another worker's :meth:`maintain` takes the lease and
  reports the session as gained, so the caller rebuilds its state and reclaims the pending entries (XAUTOCLAIM).
- A worker that finds its lease held by someone else (it stalled past the ttl) reports the session as lost and
  must drop its state without acking more of that session's entries.

How a session's work reaches its owner: every per-session stream a role consumes is per session
(``frames:{sid}`` for the tracker, ``windows:{sid}`` for the scorer, see common.streams) and is read in the role's
consumer group (``tracker``, ``scorer``) only by the lease holder, which names just its owned sessions in its
XREADGROUP. Entries the previous holder read but never acked stay pending in the group; the new holder reclaims
them with XAUTOCLAIM (``Bus.reclaim``) when it gains the session and on every renewal, and de-duplicates by the
entry's natural key what the previous holder had already finished (frames by seq against the newest observation).
So a session's state (a face track; the scorer's per-frame feature cache) lives on one worker, and moves, whole,
when that worker dies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from common.bus import Bus
from common.leases import Leases
from common.logs import session_logger

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class OwnershipChange:
    gained: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()  # taken by another worker, or ended: drop the state
    renewed: tuple[str, ...] = ()  # still held (reclaim their pending entries)


class SessionOwnership:
    """The sessions one worker of ``role`` holds. Call :meth:`maintain` every ``ttl_ms / 3`` to take sessions on,
    and :meth:`renew` on its own schedule (a task) every ``ttl_ms / 3`` so a long piece of work cannot let a held
    lease expire."""

    def __init__(self, bus: Bus, role: str, owner: str, ttl_ms: int) -> None:
        self.bus = bus
        self.role = role
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.leases = Leases(bus, role)
        self.known: set[str] = set()
        self.owned: set[str] = set()
        self._free_rounds: dict[str, int] = {}

    @property
    def renew_every_s(self) -> float:
        return self.ttl_ms / 3000

    def started(self, sid: str) -> None:
        """A session was announced as started (or found live)."""
        self.known.add(sid)

    def ended(self, sid: str) -> None:
        """A session was announced as ended: :meth:`maintain` releases it if held."""
        self.known.discard(sid)
        self._free_rounds.pop(sid, None)

    async def maintain(self) -> OwnershipChange:
        """Renew held leases, release ended sessions, and compete for free ones."""
        gained: list[str] = []
        lost: list[str] = []
        renewed: list[str] = []
        for sid in sorted(self.known | self.owned):
            if sid not in self.known:
                await self.release(sid)
                lost.append(sid)
                continue
            if sid not in self.owned:
                waited = self._free_rounds[sid] = self._free_rounds.get(sid, 0) + 1
                if waited <= len(self.owned):
                    continue  # let a less loaded worker take it first
            held = await self.leases.hold(sid, self.owner, self.ttl_ms)
            if held and sid not in self.owned:
                self.owned.add(sid)
                self._free_rounds.pop(sid, None)
                gained.append(sid)
            elif held:
                renewed.append(sid)
            elif sid in self.owned:
                session_logger(log, sid).warning("%s lease lost to another worker", self.role)
                self.owned.discard(sid)
                lost.append(sid)
        return OwnershipChange(tuple(gained), tuple(lost), tuple(renewed))

    async def renew(self) -> tuple[str, ...]:
        """Renew every held lease now (concurrently), on the holder's own schedule, apart from any work in hand;
        return the sessions found lost (expired or taken over: drop their state, ack nothing more of them).

        A holder renews only what it still holds (common.leases.Leases.renew): a lease that expired meanwhile is
        not taken back here (:meth:`maintain` competes for it again like any free session)."""
        held = sorted(self.owned)
        if not held:
            return ()
        alive = await asyncio.gather(*(self.leases.renew(sid, self.owner, self.ttl_ms) for sid in held))
        lost: list[str] = []
        for sid, ok in zip(held, alive, strict=True):
            if not ok and sid in self.owned:  # (one released meanwhile is no loss)
                session_logger(log, sid).warning("%s lease lost (expired or taken over)", self.role)
                self.owned.discard(sid)
                lost.append(sid)
        return tuple(lost)

    async def release(self, sid: str) -> None:
        """Give a session's lease back (it ended, or this worker stops)."""
        self.owned.discard(sid)
        self._free_rounds.pop(sid, None)
        await self.leases.release(sid, self.owner)

    async def release_all(self) -> None:
        for sid in sorted(self.owned):
            await self.release(sid)
