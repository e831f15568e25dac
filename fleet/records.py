"""The records on fleet's Kafka topics (Faust records, JSON): the wire contracts of the fleet analytics.

They live here rather than in ``common/messages.py`` because only this package reads or writes Kafka; Redis
entries stay :class:`common.messages.Message` types. Each record carries ``v`` (its schema version).

- :class:`ScoreRecord` on ``feqa.scores`` (key: the patient's pseudonymous ref, so one patient's scores stay on one
  partition and in one agent's table): one task score, made by the bridge from a ``Score`` and its session's
  ``SessionInfo``. ``key`` is ``Score.key``: the bridge delivers at least once, the agents drop repeats by it.
- :class:`TrendRecord` on ``feqa.trends`` (key: patient): a patient-task's baseline band, trend and flag after a
  new score (the numbers of :func:`common.longitudinal.analyse`; NaN where there is not enough data yet).
- :class:`FlagRecord` on ``feqa.flags`` (key: patient): a deterioration flag raised or cleared.

Faust fills a missing field with None and coerces types loosely, so every consumer checks a record with
:func:`problem` (or the agents' own checks) before using it.
"""

from __future__ import annotations

import math

import faust

from common.messages import Score, SessionInfo
from common.protocols import UnknownProtocol, get_protocol

SCHEMA_VERSION = 1


class ScoreRecord(faust.Record, serializer="json"):
    """One task score of one session of one patient."""

    v: int
    key: str  # Score.key
    patient: str  # SessionInfo.patient_id (pseudonymous)
    clinic: str
    sid: str
    session_ts: float  # when the session was created (the dashboard charts sessions by this time)
    protocol: str
    task: str
    rep: int
    ts: float  # when the score was made
    score: float | None  # calibrated, on the protocol's scale; None when withheld
    scale_min: float
    scale_max: float
    model: str
    version: str
    withheld: str


class TrendRecord(faust.Record, serializer="json"):
    v: int
    patient: str
    clinic: str
    protocol: str
    task: str
    sessions: int  # sessions with a value
    last_ts: float  # newest session time
    baseline_mean: float
    baseline_low: float
    baseline_high: float
    baseline_n: int
    slope_per_30d: float
    r: float
    worse: bool
    recent_mean: float
    margin: float
    reason: str


class FlagRecord(faust.Record, serializer="json"):
    v: int
    patient: str
    clinic: str
    protocol: str
    task: str
    worse: bool  # True: raised; False: cleared
    margin: float
    reason: str
    ts: float  # newest session time when it changed


def score_record(score: Score, info: SessionInfo) -> ScoreRecord:
    """The record the bridge sends for a task score of the session ``info``."""
    return ScoreRecord(
        v=SCHEMA_VERSION,
        key=score.key,
        patient=info.patient_id,
        clinic=info.clinic,
        sid=score.sid,
        session_ts=info.created_ts,
        protocol=score.protocol,
        task=score.task,
        rep=score.rep,
        ts=score.ts,
        score=score.score,
        scale_min=score.scale_min,
        scale_max=score.scale_max,
        model=score.model,
        version=score.version,
        withheld=score.withheld,
    )


def problem(rec: ScoreRecord) -> str:
    """Why ``rec`` cannot be used ("" when it can): wrong version, missing names, unknown task, bad numbers."""
    if rec.v != SCHEMA_VERSION:
        return f"schema version {rec.v!r} is not {SCHEMA_VERSION}"
    for name in ("key", "patient", "sid", "protocol", "task"):
        if not isinstance(getattr(rec, name), str) or not getattr(rec, name):
            return f"{name} missing"
    try:
        get_protocol(rec.protocol).task(rec.task)
    except UnknownProtocol as exc:
        return str(exc)
    if not _finite(rec.session_ts) or not _finite(rec.ts):
        return "times must be finite numbers"
    if rec.score is None:
        return "" if rec.withheld else "a score without a value needs a withheld reason"
    if not _finite(rec.score):
        return "score is not a finite number"
    return ""


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
