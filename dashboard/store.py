"""Writes from the pipeline into the database: task scores (idempotent by ``Score.key``) with their kinematics, and
session state from the ``feqa:sessions`` announcements.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from common.logs import session_logger
from common.messages import Score, SessionAnnounce
from dashboard.tables import Kinematic, Session, TaskScore

log = logging.getLogger(__name__)


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def write_task_scores(db: DbSession, scores: Sequence[tuple[str, Score]]) -> tuple[int, int]:
    """Store the task scores among ``(stream id, score)``; returns (written, skipped).

    A score already stored (same ``Score.key``: a redelivery after a crash) or for a session this dashboard does
    not know is skipped, so the caller may ack every entry after this returns. So is a second task score for a
    (session, task, repetition) that has one already: a tracker handover (the old owner stalled past its lease while
    finishing the task) can emit a task's end twice, with clip ends a few frames apart, so the keys differ; a task
    repetition keeps the first score stored, as the clinician charts one number per repetition.
    """
    wanted = [(entry_id, s) for entry_id, s in scores if s.kind == "task"]
    if not wanted:
        return 0, len(scores)
    sids = {s.sid for _, s in wanted}
    sessions = {row.sid: row for row in db.scalars(select(Session).where(Session.sid.in_(sids)))}
    keys = {s.key for _, s in wanted}
    have = set(db.scalars(select(TaskScore.key).where(TaskScore.key.in_(keys))))
    ids = [row.id for row in sessions.values()]
    reps = set(db.execute(select(TaskScore.session_id, TaskScore.task, TaskScore.rep)
                          .where(TaskScore.session_id.in_(ids))).tuples())  # fmt: skip
    written = 0
    for entry_id, score in wanted:
        session = sessions.get(score.sid)
        if session is None:
            session_logger(log, score.sid).warning("task score for a session this dashboard did not start; skipped")
            continue
        if score.key in have:
            continue
        if (session.id, score.task, score.rep) in reps:
            session_logger(log, score.sid).warning("a second task score for %s rep %d (clip end %d); the first one "
                                                   "stored is kept", score.task, score.rep, score.last_seq)  # fmt: skip
            continue
        have.add(score.key)
        reps.add((session.id, score.task, score.rep))
        row = TaskScore(
            key=score.key,
            session_id=session.id,
            protocol=score.protocol,
            task=score.task,
            rep=score.rep,
            first_seq=score.first_seq,
            last_seq=score.last_seq,
            ts=score.ts,
            capture_ts=score.capture_ts,
            score=_finite(score.score),
            raw=_finite(score.raw),
            scale=score.scale,
            scale_min=score.scale_min,
            scale_max=score.scale_max,
            model=score.model[:200],
            version=score.version[:64],
            withheld=score.withheld[:200],
            quality={k: v for k, v in score.quality.items() if _finite(v) is not None},
            stream_id=entry_id,
        )
        db.add(row)
        db.flush()
        for name, value in sorted(score.kinematics.items()):
            finite = _finite(value)
            if finite is not None:
                db.add(Kinematic(task_score_id=row.id, session_id=session.id, task=score.task, name=name, value=finite))
        written += 1
        session_logger(log, score.sid).info("stored task score %s rep %d: %s", score.task, score.rep, score.score)
    return written, len(scores) - written


def apply_announcement(db: DbSession, announce: SessionAnnounce) -> bool:
    """Move a known session to live or ended from an ingest announcement; True when something changed."""
    row = db.scalar(select(Session).where(Session.sid == announce.sid))
    if row is None:
        return False
    if announce.state == "started" and row.state == "created":
        row.state = "live"
        row.started_ts = announce.ts
        row.join_url = ""
        return True
    if announce.state == "ended" and row.state != "ended":
        row.state = "ended"
        row.ended_ts = announce.ts
        row.end_reason = announce.reason[:64]
        row.join_url = ""
        return True
    return False
