"""The scores bridge: task scores from every session's ``scores:{sid}`` (Redis) to the ``feqa.scores`` Kafka topic.

Delivery is at least once. The bridge reads in its own consumer group ``fleet`` (:data:`common.streams.FLEET_SCORES`,
created from each stream's first entry, so a session that started before the bridge loses nothing) and acks a batch
only after Kafka acknowledged all of it. A batch Kafka does not take is sent again (bounded backoff) until it is, or
the bridge stops with it unacked; entries a dead bridge left pending are taken over after ``reclaim_idle_ms``. So a
score may reach Kafka twice, never zero times; the agents drop repeats by ``Score.key``.

- Sessions: every live one (``feqa:live``) and every one announced on ``feqa:sessions``, until
  ``drain_after_end_s`` after its end.
- Only task scores travel (``kind == "task"``, withheld ones included, as the dashboard stores them); window scores
  are acked and counted ``skipped_window``. A score whose session hash is gone (retention) cannot name its patient:
  acked and counted ``no_session``. A score whose ``sid`` is not its stream's session is dead-lettered (counted
  ``wrong_session``), as is every entry that does not decode as a ``Score`` (the bus's dead-letter path).
- Each record is keyed by the session's pseudonymous patient ref (``SessionInfo.patient_id``).
- Health (service ``fleet-bridge``, every ``health_every_s``): counters ``entries``, ``sent``, ``skipped_window``,
  ``no_session``, ``wrong_session``, ``reclaimed``, ``send_failures``, and the bus's own (``bus_dead_lettered``
  counts every dead letter: undecodable entries and wrong-session scores); gauges ``sessions``, ``batch_ms`` (the
  last batch's time to Kafka). Published with :class:`common.health.HealthPublisher`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence

from common.bus import Bus, Delivery
from common.errors import BusUnavailable
from common.health import HealthPublisher
from common.logs import session_logger
from common.messages import Health, Score, SessionAnnounce, SessionInfo
from common.session_store import SessionStore
from common.streams import FLEET_SCORES, SESSIONS
from fleet.producer import Producer
from fleet.records import score_record
from fleet.settings import FleetSettings

log = logging.getLogger(__name__)

LIVE_EVERY_S = 5.0
BACKOFF_CAP_S = 5.0


class ScoresBridge:
    def __init__(self, bus: Bus, producer: Producer, settings: FleetSettings, consumer: str) -> None:
        self.bus = bus
        self.producer = producer
        self.settings = settings
        self.consumer = consumer
        self.store = SessionStore(bus)
        self.counters: collections.Counter[str] = collections.Counter()
        self.batch_ms = 0.0
        self.publisher = HealthPublisher(bus, "fleet-bridge", consumer, self._sample, settings.health_every_s)
        self._sessions: dict[str, float] = {}  # sid -> end time (0: live)
        self._infos: dict[str, SessionInfo | None] = {}
        self._cursor = "0-0"
        self._last_live = 0.0
        self._last_reclaim = 0.0
        self._last_health = 0.0

    # ------------------------------------------------------------------------------------------ loop

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until ``stop`` is set; Redis outages are waited out."""
        while not stop.is_set():
            try:
                await self.step(stop)
            except BusUnavailable as exc:
                log.error("fleet bridge waiting for Redis: %s", exc)
                await asyncio.sleep(1.0)

    async def step(self, stop: asyncio.Event | None = None) -> int:
        """One round: sessions, health, stale pending entries, then new entries. Returns the entries handled."""
        await self._follow_sessions()
        sids = self._readable()
        await self._maybe_publish_health()
        handled = 0
        now = time.monotonic()
        if sids and now - self._last_reclaim >= max(self.settings.reclaim_idle_ms / 1000, 1.0):
            self._last_reclaim = now
            for sid in sids:
                got = await self.bus.reclaim(
                    FLEET_SCORES, sid, self.consumer, min_idle_ms=self.settings.reclaim_idle_ms
                )
                self.counters["reclaimed"] += len(got)
                handled += await self._forward(got, stop)
        if not sids:
            await asyncio.sleep(self.settings.block_ms / 1000)
            return handled
        for start in range(0, len(sids), 256):
            chunk: list[str | None] = list(sids[start : start + 256])
            got = await self.bus.consume(
                FLEET_SCORES, chunk, self.consumer, count=self.settings.read_count, block_ms=self.settings.block_ms
            )
            handled += await self._forward(got, stop)
        return handled

    # ------------------------------------------------------------------------------------------ sessions

    async def _follow_sessions(self) -> None:
        while True:
            got = await self.bus.tail({(SESSIONS, None): self._cursor}, count=1000, block_ms=None)
            for d in got:
                a = d.message
                if isinstance(a, SessionAnnounce):
                    self._sessions[a.sid] = a.ts if a.state == "ended" else self._sessions.get(a.sid, 0.0)
            if got:
                self._cursor = got[-1].id
            if len(got) < 1000:
                break
        if time.monotonic() - self._last_live >= LIVE_EVERY_S:
            self._last_live = time.monotonic()
            for sid in await self.store.live():
                self._sessions.setdefault(sid, 0.0)
        cutoff = time.time() - self.settings.drain_after_end_s
        for sid in [s for s, ended in self._sessions.items() if ended and ended < cutoff]:
            del self._sessions[sid]
            self._infos.pop(sid, None)
            self.bus.forget(FLEET_SCORES, sid)

    def _readable(self) -> list[str]:
        return sorted(self._sessions)

    async def _info(self, sid: str) -> SessionInfo | None:
        if sid not in self._infos:
            self._infos[sid] = await self.store.get(sid)
        return self._infos[sid]

    # ------------------------------------------------------------------------------------------ forwarding

    async def _forward(self, got: Sequence[Delivery[Score]], stop: asyncio.Event | None) -> int:
        if not got:
            return 0
        records: list[tuple[bytes, bytes]] = []
        done: list[Delivery[Score]] = []
        for d in got:
            score = d.message
            if score.sid != d.sid:
                why = f"score of session {score.sid!r} in the stream of {d.sid!r}"
                await self.bus.dead_letter(d, FLEET_SCORES, why, self.consumer)
                self.counters["wrong_session"] += 1
                continue
            done.append(d)
            if score.kind != "task":
                self.counters["skipped_window"] += 1
                continue
            info = await self._info(score.sid)
            if info is None:
                self.counters["no_session"] += 1
                session_logger(log, score.sid).warning("task score of a session whose hash is gone; not bridged")
                continue
            records.append((info.patient_id.encode(), score_record(score, info).dumps()))
        self.counters["entries"] += len(got)
        if records and not await self._send(records, stop):
            return len(got)  # stopping: left unacked, so they are sent again later
        await self.bus.ack(done)
        self.counters["sent"] += len(records)
        return len(got)

    async def _send(self, records: list[tuple[bytes, bytes]], stop: asyncio.Event | None) -> bool:
        """Send until Kafka takes the batch (True) or the bridge is stopping (False)."""
        delay = 0.1
        while True:
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(
                    self.producer.send_batch(self.settings.scores_topic, records), self.settings.send_timeout_s
                )
                self.batch_ms = (time.monotonic() - t0) * 1000
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever the producer raised, the batch stays unacked and is retried
                self.counters["send_failures"] += 1
                log.error("fleet bridge: Kafka did not take %d records (%s); retrying in %.1f s", len(records), exc,
                          delay)  # fmt: skip
            if stop is not None and stop.is_set():
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_CAP_S)

    # ------------------------------------------------------------------------------------------ health

    def _sample(self) -> tuple[dict[str, float], dict[str, float]]:
        return ({k: float(v) for k, v in self.counters.items()},
                {"sessions": float(len(self._sessions)), "batch_ms": self.batch_ms})  # fmt: skip

    def health(self) -> Health:
        return self.publisher.snapshot()

    async def _maybe_publish_health(self) -> None:
        if time.monotonic() - self._last_health >= self.settings.health_every_s:
            self._last_health = time.monotonic()
            try:
                await self.publisher.publish()
            except BusUnavailable as exc:
                log.error("fleet bridge: health not published: %s", exc)
