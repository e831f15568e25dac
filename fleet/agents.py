"""The Faust application of the fleet analytics: two agents, their tables, and the topics between them.

- ``patient_trends`` reads :class:`ScoreRecord` from ``feqa.scores``. Table ``histories`` holds each patient's task
  history (:mod:`fleet.history`), keyed by patient, protocol and task; the topic is keyed by patient, so a
  patient's records reach one partition and one table shard. A record that fails :func:`fleet.records.problem` is
  logged and counted, a repeat (same ``Score.key``: the bridge delivers at least once) changes nothing; every
  other one updates the history and yields the patient-task's :class:`TrendRecord` (to ``feqa.trends``).
- ``deterioration_flags`` reads those trends. Table ``flags`` holds whether each patient-task is flagged; a trend
  that raises or clears the flag yields a :class:`FlagRecord` (to ``feqa.flags``).

Both agents yield their outputs; the sinks send each to its topic keyed by patient (:func:`keyed_sink`), so the
next agent's table sees a patient's records on one partition. Tables live in ``FEQA_FLEET_STORE`` (``memory://``
by default) and are rebuilt from their Kafka changelog topics when a worker starts or takes over partitions.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust
from faust.types import StreamT

from fleet.history import add_score, flag_change, history_key, new_history, trend_of
from fleet.records import SCHEMA_VERSION, FlagRecord, ScoreRecord, TrendRecord, problem
from fleet.settings import FleetSettings

log = logging.getLogger(__name__)

Send = Callable[[str, bytes, faust.Record], Awaitable[Any]]


@dataclasses.dataclass
class FleetStats:
    records: int = 0
    invalid: int = 0
    repeats: int = 0
    trends: int = 0
    trends_seen: int = 0  # by the flags agent
    flags_raised: int = 0
    flags_cleared: int = 0


@dataclasses.dataclass
class Fleet:
    app: faust.App
    patient_trends: faust.types.AgentT[Any]
    deterioration_flags: faust.types.AgentT[Any]
    stats: FleetStats


def keyed_sink(send: Send, topic: str) -> Callable[[faust.Record], Awaitable[None]]:
    """An agent sink that sends each yielded record to ``topic`` keyed by its patient."""

    async def sink(record: faust.Record) -> None:
        await send(topic, str(getattr(record, "patient")).encode(), record)  # noqa: B009 (every output has one)

    return sink


def build(settings: FleetSettings, send: Send | None = None) -> Fleet:
    """The app with its agents; ``send`` delivers yielded records (default: the app's own Kafka topics)."""
    app = faust.App(
        settings.app_id,
        broker=settings.faust_broker(),
        store=settings.store,
        autodiscover=False,
        topic_partitions=settings.partitions,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        key_serializer="raw",
        value_serializer="json",
    )
    scores = app.topic(settings.scores_topic, value_type=ScoreRecord, partitions=settings.partitions)
    trends = app.topic(settings.trends_topic, value_type=TrendRecord, partitions=settings.partitions)
    flags_topic = app.topic(settings.flags_topic, value_type=FlagRecord, partitions=settings.partitions)
    histories = app.Table("histories", partitions=settings.partitions, value_type=dict)
    flagged = app.Table("flags", partitions=settings.partitions, value_type=bool)
    topics = {t.get_topic_name(): t for t in (trends, flags_topic)}

    async def topic_send(name: str, key: bytes, value: faust.Record) -> None:
        await topics[name].send(key=key, value=value)

    deliver = send or topic_send
    stats = FleetStats()

    async def patient_trends(stream: StreamT[ScoreRecord]) -> AsyncIterator[TrendRecord]:
        async for rec in stream:
            stats.records += 1
            why = problem(rec) if isinstance(rec, ScoreRecord) else f"not a score record: {type(rec).__name__}"
            if why:
                stats.invalid += 1
                log.warning("fleet: dropped a score record (%s): %s", why, getattr(rec, "key", "?"))
                continue
            key = history_key(rec.patient, rec.protocol, rec.task)
            history = histories.get(key) or new_history(rec)
            if not add_score(history, rec, max_sessions=settings.max_sessions, keep_first=settings.baseline_sessions):
                stats.repeats += 1
                continue
            histories[key] = history  # assigned (not mutated in place) so the changelog records it
            stats.trends += 1
            yield trend_of(history, first_n=settings.baseline_sessions, recent_n=settings.recent_sessions,
                           k=settings.band_k)  # fmt: skip

    async def deterioration_flags(stream: StreamT[TrendRecord]) -> AsyncIterator[FlagRecord]:
        async for trend in stream:
            stats.trends_seen += 1
            if not isinstance(trend, TrendRecord) or trend.v != SCHEMA_VERSION or not trend.patient:
                stats.invalid += 1
                log.warning("fleet: dropped a trend record that is not one of version %d", SCHEMA_VERSION)
                continue
            key = history_key(trend.patient, trend.protocol, trend.task)
            change = flag_change(flagged.get(key), trend)
            if change is None:
                continue
            flagged[key] = change.worse
            if change.worse:
                stats.flags_raised += 1
                log.warning("fleet: patient %s %s/%s worse than baseline: %s", change.patient, change.protocol,
                            change.task, change.reason)  # fmt: skip
            else:
                stats.flags_cleared += 1
            yield change

    trends_agent = app.agent(scores, name="patient_trends", sink=[keyed_sink(deliver, settings.trends_topic)])(
        patient_trends
    )
    flags_agent = app.agent(trends, name="deterioration_flags", sink=[keyed_sink(deliver, settings.flags_topic)])(
        deterioration_flags
    )
    return Fleet(app, trends_agent, flags_agent, stats)
