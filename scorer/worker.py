"""The scorer worker: owns sessions by lease, reads their windows in the ``scorer`` group, publishes scores.

Scale-out and failure policy:

- Every worker reads the session announcements (``feqa:sessions``, fan-out from the start) and competes for a lease
  per live session (``scorer-lease:{sid}``, :mod:`common.ownership`). The holder alone reads ``windows:{sid}``, so a
  session's observation, crop and frame-feature caches live in one process; several workers split the sessions.
- A worker that dies stops renewing; another takes the lease after at most ``lease_ttl_ms``, reads the session's
  observations and crops afresh from Redis and reclaims the windows the dead one had read but not acked
  (XAUTOCLAIM after ``reclaim_idle_ms``).
- A window is acked only after its Score is published, so a crash between the two scores it again on the new owner:
  consumers de-duplicate by ``Score.key``. No task score is lost: task-end windows are never dropped; a session that
  ended keeps being read for ``end_grace_s`` (its last task-end windows come with the end), and a worker that learns
  of an ended session with unread windows (its owner died) still takes it and drains them.
- Hop windows older than ``stale_ms`` (by entry id) are dropped and counted (``windows_stale``), as are hop windows
  with a newer hop of the same session in the same read (``windows_superseded``): live scores are newest-wins.
- A window whose ``sid`` is not its stream's session is dead-lettered.
- Leases are renewed while a round of windows is being scored (a slow model, e.g. the paper-size one on a CPU, can
  take longer than ``lease_ttl_ms`` for a round): the graphs run on the batcher's threads, so the event loop renews on
  time. Entries of the round in flight are not reclaimed by their own worker meanwhile; a session lost during the
  round still gets its scores published (idempotent by ``Score.key``) but its windows are left unacked for the new
  owner.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Sequence
from typing import Any

from common.backlog import group_backlog
from common.bus import Bus, Delivery
from common.health import HealthPublisher
from common.logs import session_logger
from common.messages import Score, SessionAnnounce, Window
from common.ownership import SessionOwnership
from common.session_store import SessionStore
from common.streams import SCORES, SESSIONS, WINDOWS, StreamSpec
from common.tasks import stop_tasks
from scorer.health import ScorerStats
from scorer.registry import ModelRegistry
from scorer.scoring import WindowScorer
from scorer.session import SessionState
from scorer.settings import ScorerSettings

log = logging.getLogger(__name__)

GROUP = WINDOWS.group or "scorer"
SYNC_EVERY_S = 0.25


class ScorerWorker:
    """One scorer process's loop; call :meth:`tick` repeatedly or :meth:`run` until stopped."""

    def __init__(self, settings: ScorerSettings, bus: Bus, registry: ModelRegistry | None = None) -> None:
        self.s = settings
        self.bus = bus
        self.consumer = settings.consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.registry = registry or ModelRegistry(settings.common.models_dir, settings.backend_choice())
        self.ownership = SessionOwnership(bus, "scorer", self.consumer, settings.lease_ttl_ms)
        self.store = SessionStore(bus)
        self.sessions: dict[str, SessionState] = {}
        self.stats = ScorerStats()
        self.batcher = settings.batcher()
        self.scorer = WindowScorer(settings, self.registry, self.batcher, self.stats)
        self._sessions_cursor = "0-0"
        self._next_lease_s = 0.0
        self._next_health_s = 0.0
        self._next_scan_s = 0.0
        self._scan: asyncio.Task[object] | None = None
        self._reclaimed: list[Delivery[Window]] = []
        self._in_flight: set[str] = set()  # sessions whose windows the current round is scoring
        self.health = HealthPublisher(bus, "scorer", self.consumer, self.health_sample, settings.health_every_s)

    async def run(self, stop: asyncio.Event) -> None:
        log.info("scorer worker %s started; models from %s", self.consumer, self.registry.root)
        try:
            await asyncio.to_thread(self.registry.scan)
            self._next_scan_s = time.monotonic() + self.s.models_poll_s
            while not stop.is_set():
                await self.tick()
        finally:
            await self.ownership.release_all()
            self.batcher.close()
            log.info("scorer worker %s stopped: %s", self.consumer, dict(self.stats.counters))

    async def tick(self) -> int:
        """One round: announcements, leases, models, one read of windows; returns how many windows were handled."""
        await self._poll_control()
        now = time.monotonic()
        if now >= self._next_lease_s:
            self._next_lease_s = now + self.ownership.renew_every_s
            await self._maintain_leases()
        if now >= self._next_scan_s and (self._scan is None or self._scan.done()):
            self._next_scan_s = now + self.s.models_poll_s
            self._scan = asyncio.create_task(asyncio.to_thread(self.registry.scan))
        fresh = await self.bus.consume(WINDOWS, list(self.sessions), self.consumer, count=self.s.read_count,
                                       block_ms=self.s.block_ms)  # fmt: skip
        deliveries, self._reclaimed = [*self._reclaimed, *fresh], []
        if deliveries:
            await self._keeping_leases(self._handle(deliveries))
        await self._sync_idle()
        await self._finish_ended()
        if time.monotonic() >= self._next_health_s:
            self._next_health_s = time.monotonic() + self.s.health_every_s
            await self.publish_health()
        return len(deliveries)

    async def scan_models(self) -> None:
        """Scan the models directory now (tests and the CLI; the loop polls on its own)."""
        await asyncio.to_thread(self.registry.scan)

    # ------------------------------------------------------------------------------------------ sessions

    async def _poll_control(self) -> None:
        cursors: dict[tuple[StreamSpec[Any], str | None], str] = {(SESSIONS, None): self._sessions_cursor}
        for d in await self.bus.tail(cursors, count=500, block_ms=None):
            self._sessions_cursor = d.id
            msg = d.message
            if not isinstance(msg, SessionAnnounce):
                continue
            if msg.state == "started":
                self.ownership.started(msg.sid)
                self._next_lease_s = 0.0  # compete for it now
            elif msg.state == "ended":
                await self._on_ended(msg.sid)

    async def _on_ended(self, sid: str) -> None:
        state = self.sessions.get(sid)
        if state is not None:
            state.ended_at = state.ended_at or time.monotonic()
            return
        backlog = await group_backlog(self.bus, WINDOWS, sid)
        if backlog:
            session_logger(log, sid).info("ended with %d windows unscored: taking it to drain them", backlog)
            self.ownership.started(sid)
            self._next_lease_s = 0.0
        else:
            self.ownership.ended(sid)

    async def _keeping_leases(self, work: Awaitable[None]) -> None:
        """Run a round of scoring, renewing the leases whenever they are due until it is done."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                wait = max(0.0, self._next_lease_s - time.monotonic())
                done, _ = await asyncio.wait({task}, timeout=wait)
                if done:
                    task.result()
                    return
                self._next_lease_s = time.monotonic() + self.ownership.renew_every_s
                await self._maintain_leases()
        finally:
            if not task.done():  # cancelled (the worker stops): take the round down with it
                await stop_tasks([task], what="scoring round")

    async def _maintain_leases(self) -> None:
        change = await self.ownership.maintain()
        for sid in change.lost:
            self._drop(sid)
        for sid in change.gained:
            await self._adopt(sid)
        for sid in (*change.gained, *change.renewed):
            if sid in self._in_flight:  # its pending windows are this round's own, being scored now
                continue
            got = await self.bus.reclaim(WINDOWS, sid, self.consumer, min_idle_ms=self.s.reclaim_idle_ms,
                                         count=self.s.read_count)  # fmt: skip
            if got:
                session_logger(log, sid).info("reclaimed %d pending windows", len(got))
                self.stats.count("windows_reclaimed", len(got))
                self._reclaimed.extend(got)

    async def _adopt(self, sid: str) -> None:
        state = SessionState(sid, self.s.obs_keep, self.s.crops_keep, self.s.features_keep)
        await state.refresh_info(self.store, force=True)
        read = await state.sync(self.bus)
        if state.info is not None and state.info.ended:
            state.ended_at = time.monotonic()
        self.sessions[sid] = state
        self.stats.count("sessions_taken")
        consent = state.info.consent.live_scoring if state.info else False
        state.log.info("scoring session (%d observations, %d crops on hand; live scoring consent: %s)",
                       read.obs, read.crops, "yes" if consent else "no")  # fmt: skip

    def _drop(self, sid: str) -> None:
        state = self.sessions.pop(sid, None)
        if state is not None and sid not in self._in_flight:  # a round in flight still reads it; it goes after
            state.clear()

    async def _finish_ended(self) -> None:
        now = time.monotonic()
        for sid, state in list(self.sessions.items()):
            if state.ended_at is None:
                continue
            if now - max(state.ended_at, state.last_window_at) < self.s.end_grace_s:
                continue
            backlog = await group_backlog(self.bus, WINDOWS, sid)
            if backlog:
                continue
            state.log.info("session ended and its windows are scored; releasing it")
            self._drop(sid)
            self.ownership.ended(sid)
            await self.ownership.release(sid)

    # ------------------------------------------------------------------------------------------ windows

    async def _handle(self, deliveries: Sequence[Delivery[Window]]) -> None:
        now_ms = time.time() * 1000
        by_session: dict[str, list[Delivery[Window]]] = {}
        done: list[Delivery[Window]] = []
        for d in deliveries:
            sid = d.sid if d.sid in self.sessions else None
            if sid is None:  # lease lost since the read: leave it pending for the new owner to reclaim
                continue
            if d.message.sid != sid:
                await self._dead_letter(d, f"window of session {d.message.sid!r} on the stream of session {sid!r}")
                continue
            by_session.setdefault(sid, []).append(d)
        self.stats.count("windows_in", sum(len(v) for v in by_session.values()))
        jobs: list[tuple[SessionState, Delivery[Window]]] = []
        for sid, items in by_session.items():
            items.sort(key=lambda d: _entry_key(d.id))
            hops = [d for d in items if d.message.reason == "hop"]
            newest_hop = hops[-1] if hops else None
            for d in items:
                if d.message.reason == "hop" and now_ms - _entry_ms(d.id) > self.s.stale_ms:
                    self.stats.count("windows_stale")
                    done.append(d)
                elif d.message.reason == "hop" and d is not newest_hop:
                    self.stats.count("windows_superseded")
                    done.append(d)
                else:
                    jobs.append((self.sessions[sid], d))
            state = self.sessions[sid]
            state.last_window_at = time.monotonic()
            if any(s is state for s, _ in jobs):
                await state.refresh_info(self.store)
                await state.sync(self.bus)
        self._in_flight = {state.sid for state, _ in jobs}
        try:
            results = await asyncio.gather(*(self._score_one(state, d.message) for state, d in jobs))
        finally:
            self._in_flight = set()
        scores = [r for r in results if r is not None]
        if scores:  # published even for a session lost meanwhile: a finished score is never thrown away
            await self.bus.publish_many(SCORES, scores)
        now = time.time()
        for (state, d), r in zip(jobs, results, strict=True):
            if r is None:
                continue
            self.stats.latency(1000 * (now - d.message.created_ts))
            if self.sessions.get(state.sid) is state:
                done.append(d)
            else:  # the lease went during the round: the new owner reclaims and acks it
                self.stats.count("windows_left_to_new_owner")
        await self.bus.ack([d for d in done if d.sid in self.sessions])
        self._evict(jobs)

    async def _score_one(self, state: SessionState, w: Window) -> Score | None:
        if state.sid not in self.sessions:
            return None
        try:
            return await self.scorer.score(state, w)
        except Exception:  # a bug must neither stop the other windows nor make a task score vanish: say so
            state.log.exception("window %s..%s could not be scored; withheld as model_error", w.first_seq, w.last_seq)
            self.stats.count("errors")
            return self.scorer.failed(state, w, "model_error")

    def _evict(self, jobs: list[tuple[SessionState, Delivery[Window]]]) -> None:
        newest: dict[str, Window] = {}
        for state, d in jobs:
            newest[state.sid] = d.message
        for sid, w in newest.items():
            owned = self.sessions.get(sid)
            if owned is None:
                continue
            if w.reason == "task_end":
                owned.forget_before(w.last_seq + 1)
            elif w.task and w.task_start_seq >= 0:
                owned.forget_before(w.task_start_seq)

    async def _dead_letter(self, d: Delivery[Window], error: str) -> None:
        await self.bus.dead_letter(d, WINDOWS, error, self.consumer)
        self.stats.count("dead_lettered")

    async def _sync_idle(self) -> None:
        """Read new observations and crops of sessions with no window lately: a session's crops are deleted when it
        ends, and its last task-end window may come after that."""
        now = time.monotonic()
        for state in list(self.sessions.values()):
            if state.ended_at is None and now - state.synced_at >= SYNC_EVERY_S:
                await state.sync(self.bus)

    def health_sample(self) -> tuple[dict[str, float], dict[str, float]]:
        gauges = {"sessions": float(len(self.sessions)), "models": float(len(self.registry.serving))}
        return self.stats.sample(gauges, dict(self.batcher.stats))

    async def publish_health(self) -> None:
        await self.health.publish()


def _entry_ms(entry_id: str) -> float:
    return float(entry_id.split("-", 1)[0])


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, n = entry_id.partition("-")
    return int(ms), int(n or 0)


async def serve(settings: ScorerSettings, stop: asyncio.Event | None = None) -> None:
    """Connect and run a worker until ``stop`` is set (or SIGINT/SIGTERM)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():  # signal handlers can only live there
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    name = settings.consumer or f"{socket.gethostname()}-{os.getpid()}"
    bus = await Bus.from_settings(settings.common, name=f"scorer-{name}")
    try:
        await ScorerWorker(settings, bus).run(stop)
    finally:
        await bus.close()


def run(settings: ScorerSettings | None = None) -> None:
    """Run the scorer worker in this process (``python -m scorer``)."""
    asyncio.run(serve(settings or ScorerSettings()))
