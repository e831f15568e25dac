"""The tracker worker: owns sessions by lease, reads their frames in the ``tracker`` group, publishes observations,
crops, windows and coaching.

Scale-out and failure policy:
- Every worker reads the session announcements (fan-out, from the start of the stream) and competes for a lease
  per live session (``tracker-lease:{sid}``, ``lease_ttl_ms``, renewed every third of it). The holder alone reads
  that session's frames, so its face track stays in one process; several workers split the sessions between them.
  A worker that already owns k sessions tries a free one only after it has seen it free for k lease rounds, so the
  least-loaded worker usually wins it (sessions are not moved once owned: no rebalancing when a worker joins).
- A worker that dies stops renewing; another takes the lease over after at most ``lease_ttl_ms`` and reclaims the
  frames the dead one had read but not acked (XAUTOCLAIM after ``reclaim_idle_ms``). Reclaimed or new frames whose
  entry id is older than ``stale_ms`` are not tracked: they get an ``Obs`` with reason ``stale`` (live video: the
  newest frame wins; the gap stays visible). Others are tracked normally, so no frame is lost silently.
- A frame whose ``sid`` is not its stream's session, or a frame of a session without a ``session:{sid}`` hash
  (unknown session), is dead-lettered (the bus's dead-letter path). Every other frame becomes an ``Obs``, with a
  reason when it has no face.
- Exactly one observation per frame: frames are de-duplicated by ``seq`` per session (a publish retried after its
  reply was lost stores a frame twice; a frame the previous owner observed but did not ack is reclaimed). A frame
  whose seq is among the newest ``DEDUPE_SEQS`` handled (seeded from ``obs:{sid}`` on takeover) is acked and
  counted as ``duplicates``, never observed twice.
- Sessions whose ingest died are ended here too: every ``sweep_every_s`` the worker ends live sessions whose
  ``ingest-lease:{sid}`` expired (common.liveness.sweep, reason ``ingest_lost``), which deletes their frames and
  crops; any tracker or ingest may do it, the first end wins.
- Health: every ``health_every_s`` a Health entry on ``feqa:health`` (see :meth:`TrackerWorker.health_sample`).
- Each owned session carries its :class:`~common.messages.SessionInfo` (protocol, phantom spec, consent): a
  session without live-scoring consent is tracked like any other (observations, crops, windows for kinematics,
  coaching); the scorer reads the same SessionInfo and scores it only when ``SessionInfo.may_score``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import cv2

from common.bus import Bus, Delivery
from common.dedupe import RecentKeys
from common.errors import BusUnavailable, DecodeError
from common.health import HealthPublisher, percentiles
from common.liveness import sweep
from common.logs import session_logger
from common.messages import Crop, Event, Frame, Message, Obs, SessionAnnounce, SessionInfo, Window
from common.ownership import SessionOwnership
from common.session_store import Retention, SessionStore
from common.streams import COACH, CROPS, EVENTS, FRAMES, OBS, SESSIONS, WINDOWS, StreamSpec
from common.tasks import stop_tasks
from tracker import heap
from tracker.landmarker import Landmarker
from tracker.landmarkers import LandmarkerChoice
from tracker.pipeline import FrameJob, FramePipeline
from tracker.quality import Thresholds
from tracker.settings import TrackerSettings
from tracker.windows import SessionWindows, WindowConfig

log = logging.getLogger(__name__)

DEDUPE_SEQS = 4 * FRAMES.maxlen  # frame seqs remembered per session (older ones are trimmed from frames:{sid})


@dataclasses.dataclass
class _Owned:
    sid: str
    info: SessionInfo | None  # None: no session hash (its frames are dead-lettered)
    landmarker: Landmarker | None
    reason: str
    windows: SessionWindows
    events_cursor: str
    seen: RecentKeys[int] = dataclasses.field(default_factory=lambda: RecentKeys(DEDUPE_SEQS))


@dataclasses.dataclass
class WorkerStats:
    frames: int = 0
    faces: int = 0
    stale: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    windows: int = 0
    coach: int = 0
    crops_refused: int = 0
    swept: int = 0
    sessions_taken: int = 0


class TrackerWorker:
    """One tracker process's loop; call :meth:`tick` repeatedly or :meth:`run` until stopped."""

    def __init__(self, settings: TrackerSettings, bus: Bus, landmarkers: LandmarkerChoice) -> None:
        self.s = settings
        self.bus = bus
        self.landmarkers = landmarkers
        self.pipeline = FramePipeline(settings)
        self.consumer = settings.consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.limits = Thresholds.from_settings(settings)
        self.window_config = WindowConfig.from_settings(settings)
        self.ownership = SessionOwnership(bus, "tracker", self.consumer, settings.lease_ttl_ms)
        self.store = SessionStore(bus, Retention.from_settings(settings.common))
        self.owned: dict[str, _Owned] = {}
        self.stats = WorkerStats()
        self._sessions_cursor = "0-0"
        self._next_lease_s = 0.0
        self._next_sweep_s = 0.0
        self._next_health_s = 0.0
        self.lag_ms: collections.deque[float] = collections.deque(maxlen=600)
        self.health = HealthPublisher(bus, "tracker", self.consumer, self.health_sample, settings.health_every_s)
        self._reclaimed: list[Delivery[Frame]] = []
        self._background = False  # run(): leases renewed, health and sweeps published by tasks of their own

    def health_sample(self) -> tuple[dict[str, float], dict[str, float]]:
        """Counters: the WorkerStats fields (frames, faces, stale, duplicates, dead_lettered, reclaimed, windows,
        coach, crops_refused, swept, sessions_taken). Gauges: sessions (owned), lag_p50_ms / lag_p99_ms (capture
        -> observed, newest 600 frames)."""
        p50, p99 = percentiles(list(self.lag_ms))
        counters = {k: float(v) for k, v in dataclasses.asdict(self.stats).items()}
        return counters, {"sessions": float(len(self.owned)), "lag_p50_ms": p50, "lag_p99_ms": p99}

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop``; meanwhile tasks of their own renew the held leases (every third of their TTL,
        whatever a batch in hand costs), publish health and sweep sessions whose ingest died."""
        log.info("tracker worker %s started", self.consumer)
        self._background = True
        tasks = [asyncio.create_task(self._keep_leases(), name="tracker-leases"),
                 asyncio.create_task(self.health.run(), name="tracker-health"),
                 asyncio.create_task(self._keep_sweeping(), name="tracker-sweep")]  # fmt: skip
        try:
            while not stop.is_set():
                await self.tick()
        finally:
            await stop_tasks(tasks, what="background task")
            self._background = False
            for sid in list(self.owned):
                await self._drop(sid, release=True)
            log.info("tracker worker %s stopped: %s", self.consumer, self.stats)

    async def tick(self) -> int:
        """One round: sessions whose lease was lost dropped, leases competed for when due, then control streams and
        frames in one read; returns how many frames were handled. (Called alone, without :meth:`run`, it also
        renews, publishes health and sweeps when those are due.)"""
        for sid in [sid for sid in self.owned if sid not in self.ownership.owned]:
            await self._drop(sid, release=False)  # found lost by the lease task
        if time.monotonic() >= self._next_lease_s:
            self._next_lease_s = time.monotonic() + self.ownership.renew_every_s
            await self._maintain_leases()
        if not self._background:
            if time.monotonic() >= self._next_sweep_s:
                self._next_sweep_s = time.monotonic() + self.s.sweep_every_s
                self.stats.swept += len(await sweep(self.store))
            if time.monotonic() >= self._next_health_s:
                self._next_health_s = time.monotonic() + self.s.health_every_s
                await self.health.publish()
        control, fresh = await self.bus.poll(
            FRAMES, list(self.owned), self.consumer, self._control_cursors(), count=self.s.read_count,
            block_ms=self.s.block_ms, tail_count=500,
        )  # fmt: skip
        await self._on_control(control)
        deliveries, self._reclaimed = [*self._reclaimed, *fresh], []
        if deliveries:
            await self._handle(deliveries)
        else:
            now = time.time()
            await self._publish_windows([w for o in self.owned.values() for w in o.windows.due(now)])
        return len(deliveries)

    async def _keep_leases(self) -> None:
        """Renew the held leases every third of their TTL, on this task's own schedule (a long batch in the tick
        cannot let them expire); a lease found lost is dropped by the next tick."""
        while True:
            await asyncio.sleep(self.ownership.renew_every_s)
            try:
                await self.ownership.renew()
            except BusUnavailable as exc:
                log.error("tracker %s: leases not renewed: %s", self.consumer, exc)

    async def _keep_sweeping(self) -> None:
        while True:
            try:
                self.stats.swept += len(await sweep(self.store))
            except BusUnavailable as exc:
                log.error("tracker %s: sweep failed: %s", self.consumer, exc)
            await asyncio.sleep(self.s.sweep_every_s)

    # ------------------------------------------------------------------------------------------ control

    def _control_cursors(self) -> dict[tuple[StreamSpec[Any], str | None], str]:
        cursors: dict[tuple[StreamSpec[Any], str | None], str] = {(SESSIONS, None): self._sessions_cursor}
        cursors.update({(EVENTS, o.sid): o.events_cursor for o in self.owned.values()})
        return cursors

    async def _on_control(self, deliveries: Sequence[Delivery[Message]]) -> None:
        windows: list[Window] = []
        announced: list[SessionAnnounce] = []
        now = time.time()
        for d in deliveries:
            msg = d.message
            if d.spec is SESSIONS:
                self._sessions_cursor = d.id
                if isinstance(msg, SessionAnnounce):
                    announced.append(msg)
                continue
            owned = self.owned.get(d.sid or "")
            if owned is not None:
                owned.events_cursor = d.id
                windows.extend(self._on_event(owned, msg, now))
        await self._publish_windows(windows)
        # A session's own events come first: its last task_end precedes its end announcement in one poll (the
        # page posts task_end, then ends), and dropping the session first lost the last repetition's window.
        for announce in announced:
            await self._on_announce(announce)

    def _on_event(self, owned: _Owned, msg: Message, now: float) -> list[Window]:
        if isinstance(msg, Event) and msg.sid == owned.sid:
            return owned.windows.on_event(msg, now)
        return []

    async def _catch_up_events(self, owned: _Owned) -> list[Window]:
        """Events of the session after our cursor (published before its end, not yet read)."""
        out: list[Window] = []
        for d in await self.bus.range(EVENTS, owned.sid, start="(" + owned.events_cursor):
            owned.events_cursor = d.id
            out.extend(self._on_event(owned, d.message, time.time()))
        return out

    async def _on_announce(self, msg: SessionAnnounce) -> None:
        if msg.state == "started":
            self.ownership.started(msg.sid)
            self._next_lease_s = 0.0  # compete for it now
        elif msg.state == "ended":
            self.ownership.ended(msg.sid)
            owned = self.owned.get(msg.sid)
            if owned is not None:
                windows = await self._catch_up_events(owned)
                await self._publish_windows([*windows, *owned.windows.flush()])
                await self._drop(msg.sid, release=True)

    async def _maintain_leases(self) -> None:
        change = await self.ownership.maintain()
        for sid in change.lost:
            if sid in self.owned:
                await self._drop(sid, release=False)
        for sid in change.gained:
            if sid in self.owned:  # lost (the lease task) and taken back in this round: its state starts afresh
                await self._drop(sid, release=False)
            await self._adopt(sid)
        for sid in (*change.gained, *change.renewed):
            got = await self.bus.reclaim(FRAMES, sid, self.consumer, min_idle_ms=self.s.reclaim_idle_ms,
                                         count=self.s.read_count)  # fmt: skip
            if got:
                session_logger(log, sid).info("reclaimed %d pending frames", len(got))
                self.stats.reclaimed += len(got)
                self._reclaimed.extend(got)

    async def _adopt(self, sid: str) -> None:
        try:
            info = await self.store.get(sid)
        except DecodeError as exc:
            session_logger(log, sid).error("unreadable session hash: %s", exc)
            info = None
        if info is not None:
            landmarker, reason = self.landmarkers.for_session(sid, info)
        else:
            landmarker, reason = None, "unknown_session"
        windows = SessionWindows(sid, self.window_config, self.limits, protocol=info.protocol if info else "",
                                 landmarker=landmarker.name if landmarker else "")  # fmt: skip
        # Events up to the session's last observation were handled by whoever tracked it before: replay them for
        # the task state; later ones (or a task end naming a frame not yet observed) are new and handled now.
        observed = await self.bus.latest(OBS, sid, DEDUPE_SEQS)
        last = observed[-1:]
        last_id = _entry_key(last[-1].id) if last else (-1, -1)
        last_seq = max((d.message.seq for d in observed), default=-1)
        windows.last_seq = last_seq
        past = await self.bus.latest(EVENTS, sid, 200)
        fresh: list[Window] = []
        for d in past:
            if _entry_key(d.id) > last_id or d.message.seq > last_seq:
                fresh.extend(windows.on_event(d.message, time.time()))
            else:
                windows.replay(d.message)
        cursor = past[-1].id if past else "0-0"
        seen = RecentKeys(DEDUPE_SEQS, (d.message.seq for d in observed))
        self.owned[sid] = _Owned(sid, info, landmarker, reason, windows, cursor, seen)
        await self._publish_windows(fresh)
        self.stats.sessions_taken += 1
        name = landmarker.name if landmarker else f"none ({reason})"
        session_logger(log, sid).info("tracking session with landmarker %s", name)

    async def _drop(self, sid: str, *, release: bool) -> None:
        self.owned.pop(sid, None)
        self.bus.forget(FRAMES, sid)
        self.pipeline.forget(sid)
        self.landmarkers.close(sid)
        heap.trim()  # the session's buffers go back to the system, not into a fragmented arena
        if release:
            await self.ownership.release(sid)

    # ------------------------------------------------------------------------------------------ frames

    async def _handle(self, deliveries: Sequence[Delivery[Frame]]) -> None:
        jobs: list[FrameJob] = []
        done: list[Delivery[Frame]] = []
        now_ms = time.time() * 1000
        for d in sorted(deliveries, key=lambda d: (d.stream, d.message.seq)):
            owned = self.owned.get(d.sid or "")
            if owned is None:  # lease lost since the read: leave it pending for the new owner to reclaim
                continue
            f = d.message
            if f.sid != owned.sid:
                await self._dead_letter(d, f"frame of session {f.sid!r} on the stream of session {owned.sid!r}")
                continue
            if owned.info is None:
                await self._dead_letter(d, f"unknown session {owned.sid!r}: no session hash")
                continue
            done.append(d)
            if not owned.seen.add(f.seq):  # stored twice by a retried publish, or observed before a takeover
                self.stats.duplicates += 1
                continue
            if now_ms - _entry_ms(d.id) > self.s.stale_ms:
                self.stats.stale += 1
                jobs.append(FrameJob(f, None, "stale"))
            else:
                jobs.append(FrameJob(f, owned.landmarker, owned.reason))
        results = await asyncio.to_thread(self.pipeline.process, jobs) if jobs else []
        # A lease lost while the batch ran (the lease task found it taken): that session's frames stay pending for
        # the new owner, who reclaims and observes them; nothing of them is written or acked here.
        held = self.ownership.owned
        results = [r for r in results if r.obs.sid in held]
        done = [d for d in done if d.sid in held]
        now = time.time()
        self.lag_ms.extend((now - r.obs.capture_ts) * 1000 for r in results)
        windows: list[Window] = []
        coach: list[Event] = []
        for r in results:
            owned_s = self.owned.get(r.obs.sid)
            if owned_s is not None:
                w, c = owned_s.windows.on_sample(r.sample, now)
                windows.extend(w)
                coach.extend(c)
        obs: list[Obs] = [r.obs for r in results]
        crops: list[Crop] = [r.crop for r in results if r.crop is not None]
        # One round trip: observations, crops, windows, coaching, then the frames' acks, all or nothing.
        _, crop_ids, _, _ = await self.bus.commit([(OBS, obs), (CROPS, crops), (WINDOWS, windows), (COACH, coach)],
                                                  done)  # fmt: skip
        self.stats.crops_refused += crop_ids.count(None)
        self.stats.windows += len(windows)
        self.stats.frames += len(results)
        self.stats.faces += sum(1 for r in results if r.obs.face)
        self.stats.coach += len(coach)

    async def _publish_windows(self, windows: Sequence[Window]) -> None:
        if windows:
            await self.bus.publish_many(WINDOWS, windows)
            self.stats.windows += len(windows)

    async def _dead_letter(self, d: Delivery[Frame], error: str) -> None:
        await self.bus.dead_letter(d, FRAMES, error, self.consumer)
        self.stats.dead_lettered += 1


def _entry_ms(entry_id: str) -> float:
    return float(entry_id.split("-", 1)[0])


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, n = entry_id.partition("-")
    return int(ms), int(n or 0)


async def serve(settings: TrackerSettings, stop: asyncio.Event | None = None) -> None:
    """Connect, load the landmarkers and run a worker until ``stop`` is set (or SIGINT/SIGTERM)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():  # signal handlers can only live there
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    landmarkers = LandmarkerChoice.from_settings(settings)
    worker_name = settings.consumer or f"{socket.gethostname()}-{os.getpid()}"
    bus = await Bus.from_settings(settings.common, name=f"tracker-{worker_name}")
    try:
        await TrackerWorker(settings, bus, landmarkers).run(stop)
    finally:
        await bus.close()


def setup_process(settings: TrackerSettings) -> None:
    """Process-wide settings of a tracker process, before any thread starts: glibc's malloc arenas capped
    (:mod:`tracker.heap`), and OpenCV's thread pool sized like the models' (``intra_op_threads``; 0 leaves OpenCV's
    default, one per core). The crops a frame needs are small: split across a second thread they cost more CPU than
    they save (side by side, 60 phantom frames x 9 alternating rounds at load 8-10: landmarker calls 1.01-1.03x and
    the whole per-frame pipeline 1.02-1.04x the frames per CPU-second with one OpenCV thread instead of two)."""
    heap.limit_arenas(settings.malloc_arenas)
    if settings.intra_op_threads > 0:
        cv2.setNumThreads(settings.intra_op_threads)


def run(settings: TrackerSettings | None = None) -> None:
    """Run the tracker worker in this process (``python -m tracker``), set up by :func:`setup_process` first."""
    settings = settings or TrackerSettings()
    setup_process(settings)
    asyncio.run(serve(settings))
