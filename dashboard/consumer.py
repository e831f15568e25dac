"""The scores consumer: task scores from ``scores:{sid}`` into the database, at least once, idempotently.

- It reads, in consumer group ``dashboard``, the scores streams of the sessions this dashboard started that are
  not ended, or ended less than ``drain_after_end_s`` ago (the list is refreshed from the database every loop).
- An entry is acked only after the database transaction that stores it commits; a crash in between redelivers it
  and ``Score.key`` (unique in ``task_scores``) makes the second write a no-op. Entries left pending by a dead
  consumer are taken over after ``reclaim_idle_ms`` (XAUTOCLAIM), and so are this consumer's own after a restart.
- It also follows ``feqa:sessions`` so sessions move to live and ended with no page open.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from common.bus import Bus, Delivery
from common.errors import BusUnavailable
from common.messages import Score, SessionAnnounce
from common.streams import SCORES, SESSIONS
from dashboard.db import Database
from dashboard.store import apply_announcement, write_task_scores
from dashboard.tables import Session

log = logging.getLogger(__name__)

GROUP = SCORES.group  # "dashboard"


@dataclasses.dataclass
class ConsumerStats:
    entries: int = 0
    task_scores: int = 0
    duplicates: int = 0
    reclaimed: int = 0
    announcements: int = 0
    errors: int = 0
    streams: int = 0


class ScoreConsumer:
    def __init__(
        self,
        bus: Bus,
        db: Database,
        consumer: str,
        *,
        drain_after_end_s: float = 3600.0,
        reclaim_idle_ms: int = 15_000,
        block_ms: int = 500,
        batch: int = 64,
    ) -> None:
        self.bus = bus
        self.db = db
        self.consumer = consumer
        self.drain_after_end_s = drain_after_end_s
        self.reclaim_idle_ms = reclaim_idle_ms
        self.block_ms = block_ms
        self.batch = batch
        self.stats = ConsumerStats()
        self._sessions_cursor = "0-0"
        self._last_reclaim = 0.0

    def _sids(self) -> list[str]:
        cutoff = time.time() - self.drain_after_end_s
        with self.db.session() as db:
            return list(
                db.scalars(select(Session.sid).where((Session.state != "ended") | (Session.ended_ts >= cutoff)))
            )

    async def run(self) -> None:
        """Consume until cancelled; Redis outages are waited out, database errors logged and retried."""
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except BusUnavailable as exc:
                self.stats.errors += 1
                log.error("scores consumer waiting for Redis: %s", exc)
                await asyncio.sleep(1.0)
            except Exception:
                self.stats.errors += 1
                log.exception("scores consumer step failed; retrying")
                await asyncio.sleep(1.0)

    async def step(self) -> int:
        """One round: announcements, stale pending entries, then new entries. Returns entries handled."""
        await self._follow_sessions()
        sids = await asyncio.to_thread(self._sids)
        self.stats.streams = len(sids)
        handled = 0
        if sids and time.monotonic() - self._last_reclaim > max(self.reclaim_idle_ms / 1000, 1.0):
            self._last_reclaim = time.monotonic()
            for sid in sids:
                got = await self.bus.reclaim(SCORES, sid, self.consumer, min_idle_ms=self.reclaim_idle_ms)
                if got:
                    self.stats.reclaimed += len(got)
                    handled += await self._store(got)
        if not sids:
            await asyncio.sleep(self.block_ms / 1000)
            return handled
        for start in range(0, len(sids), 256):
            chunk: list[str | None] = list(sids[start : start + 256])
            got = await self.bus.consume(SCORES, chunk, self.consumer, count=self.batch, block_ms=self.block_ms)
            handled += await self._store(got)
        return handled

    async def _store(self, got: list[Delivery[Score]]) -> int:
        if not got:
            return 0
        pairs = [(d.id, d.message) for d in got]
        try:
            written, _ = await asyncio.to_thread(self._write, pairs)
        except IntegrityError:
            # another dashboard instance stored the same key at the same moment: the retry finds it and skips
            written, _ = await asyncio.to_thread(self._write, pairs)
        tasks = sum(1 for _, s in pairs if s.kind == "task")
        self.stats.entries += len(pairs)
        self.stats.task_scores += written
        self.stats.duplicates += tasks - written
        await self.bus.ack(got)
        return len(got)

    def _write(self, pairs: list[tuple[str, Score]]) -> tuple[int, int]:
        with self.db.session() as db:
            return write_task_scores(db, pairs)

    async def _follow_sessions(self) -> None:
        got = await self.bus.tail({(SESSIONS, None): self._sessions_cursor}, count=500, block_ms=None)
        if not got:
            return
        self._sessions_cursor = got[-1].id
        announcements = [d.message for d in got if isinstance(d.message, SessionAnnounce)]
        if announcements:
            await asyncio.to_thread(self._apply, announcements)

    def _apply(self, announcements: list[SessionAnnounce]) -> None:
        with self.db.session() as db:
            for a in announcements:
                if apply_announcement(db, a):
                    self.stats.announcements += 1
