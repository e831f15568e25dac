"""One patient's task history as the fleet agents keep it, and its analysis (pure: no Faust, Kafka or Redis).

A history is a JSON object (it is a Faust table value, written to the table's changelog topic)::

    {"v": 1, "patient": ..., "clinic": ..., "protocol": ..., "task": ...,
     "sessions": [{"sid": ..., "ts": <session time>, "scores": {<Score.key>: <value or null>}}, ...]}

- :func:`add_score` files a score under its session; a key already filed (the bridge delivers at least once) is a
  repeat and changes nothing. At most ``max_sessions`` sessions are kept: the first ``keep_first`` (the baseline)
  and the newest; the ones in between are dropped, so the trend is over the kept sessions.
- :func:`trend_of` runs :func:`common.longitudinal.analyse` (the dashboard's code) on the history.
- :func:`flag_change` turns consecutive trends into a raised or cleared deterioration flag (changes only).
"""

from __future__ import annotations

import json
import math
from typing import Any

from common.longitudinal import analyse
from common.protocols import get_protocol
from fleet.records import SCHEMA_VERSION, FlagRecord, ScoreRecord, TrendRecord

History = dict[str, Any]


def history_key(patient: str, protocol: str, task: str) -> str:
    """The table key of one patient's task (JSON, so no separator can be forged by a name)."""
    return json.dumps([patient, protocol, task], separators=(",", ":"))


def new_history(rec: ScoreRecord) -> History:
    return {"v": SCHEMA_VERSION, "patient": rec.patient, "clinic": rec.clinic, "protocol": rec.protocol,
            "task": rec.task, "sessions": []}  # fmt: skip


def add_score(history: History, rec: ScoreRecord, *, max_sessions: int, keep_first: int) -> bool:
    """File ``rec`` in ``history`` (in place); False when its key is already there (a repeat)."""
    sessions: list[dict[str, Any]] = history["sessions"]
    if any(rec.key in s["scores"] for s in sessions):
        return False
    found = next((s for s in sessions if s["sid"] == rec.sid), None)
    if found is None:
        found = {"sid": rec.sid, "ts": float(rec.session_ts), "scores": {}}
        sessions.append(found)
        sessions.sort(key=lambda s: (s["ts"], s["sid"]))
    found["scores"][rec.key] = None if rec.score is None else float(rec.score)
    if rec.clinic:
        history["clinic"] = rec.clinic
    if len(sessions) > max_sessions:
        keep = min(keep_first, max_sessions - 1)
        history["sessions"] = sessions[:keep] + sessions[len(sessions) - (max_sessions - keep) :]
    return True


def trend_of(history: History, *, first_n: int, recent_n: int, k: float) -> TrendRecord:
    """The patient-task's band, trend and flag now (NaN where there is too little data)."""
    scale = get_protocol(history["protocol"]).scale
    sessions = history["sessions"]
    result = analyse(
        [s["ts"] for s in sessions],
        [list(s["scores"].values()) for s in sessions],
        scale_min=scale.min,
        scale_max=scale.max,
        first_n=first_n,
        recent_n=recent_n,
        k=k,
    )
    band, line, flag = result.baseline, result.trend, result.flag
    return TrendRecord(
        v=SCHEMA_VERSION,
        patient=history["patient"],
        clinic=history["clinic"],
        protocol=history["protocol"],
        task=history["task"],
        sessions=len(result.values),
        last_ts=result.ts[-1] if result.ts else math.nan,
        baseline_mean=band.mean,
        baseline_low=band.low,
        baseline_high=band.high,
        baseline_n=band.n,
        slope_per_30d=line.slope_per_30d,
        r=line.r,
        worse=flag.worse,
        recent_mean=flag.recent_mean,
        margin=flag.margin,
        reason=flag.reason,
    )


def flag_change(previous: bool | None, trend: TrendRecord) -> FlagRecord | None:
    """A flag record when ``trend`` raises the flag (worse, and it was not) or clears it (it was); else None."""
    if trend.worse == bool(previous):
        return None
    return FlagRecord(
        v=SCHEMA_VERSION,
        patient=trend.patient,
        clinic=trend.clinic,
        protocol=trend.protocol,
        task=trend.task,
        worse=trend.worse,
        margin=trend.margin,
        reason=trend.reason,
        ts=trend.last_ts,
    )
