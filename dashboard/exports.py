"""CSV exports: a session's task scores with ratings, a patient's whole history, and research labels.

Labels carry only the patient's pseudonymous ref (never the name or record number) and exist only for sessions with
research consent (:class:`NoResearchConsent` otherwise).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from common.errors import PermanentError
from dashboard.tables import Kinematic, Patient, Rating, Session, TaskScore, User

SCORE_COLUMNS = (
    "session_sid",
    "session_date",
    "protocol",
    "task",
    "rep",
    "score",
    "raw",
    "scale",
    "scale_min",
    "scale_max",
    "withheld",
    "model",
    "version",
    "first_seq",
    "last_seq",
    "scored_at",
    "quality",
    "kinematics",
    "rating",
    "rating_note",
    "rated_by",
    "rated_at",
)
LABEL_COLUMNS = (
    "patient_ref",
    "session_sid",
    "protocol",
    "task",
    "rep",
    "first_seq",
    "last_seq",
    "label",
    "label_scale",
    "rater_id",
    "rated_at",
    "model_score",
    "model",
    "version",
)


class NoResearchConsent(PermanentError):
    status = 403


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds") if ts else ""


def _csv(columns: Sequence[str], rows: Iterable[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return out.getvalue()


def _cell(value: object) -> object:
    # a spreadsheet must not run a formula from a note or a name
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def latest_ratings(db: DbSession, session_ids: Sequence[int]) -> dict[tuple[int, str, int], tuple[Rating, str]]:
    """The newest rating per (session, task, rep), with the rater's user name."""
    out: dict[tuple[int, str, int], tuple[Rating, str]] = {}
    query = (
        select(Rating, User.username)
        .join(User, Rating.user_id == User.id)
        .where(Rating.session_id.in_(session_ids))
        .order_by(Rating.created_ts, Rating.id)
    )
    for rating, username in db.execute(query).all():
        out[(rating.session_id, rating.task, rating.rep)] = (rating, username)
    return out


def kinematics_of(db: DbSession, score_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for k in db.scalars(select(Kinematic).where(Kinematic.task_score_id.in_(score_ids))):
        out.setdefault(k.task_score_id, {})[k.name] = k.value
    return out


def score_rows(db: DbSession, sessions: Sequence[Session]) -> list[dict[str, object]]:
    by_id = {s.id: s for s in sessions}
    scores = list(
        db.scalars(
            select(TaskScore)
            .where(TaskScore.session_id.in_(by_id))
            .order_by(TaskScore.session_id, TaskScore.ts, TaskScore.id)
        )
    )
    ratings = latest_ratings(db, list(by_id))
    kin = kinematics_of(db, [s.id for s in scores])
    rows: list[dict[str, object]] = []
    for s in scores:
        session = by_id[s.session_id]
        rating = ratings.get((s.session_id, s.task, s.rep))
        rows.append(
            {
                "session_sid": session.sid,
                "session_date": iso(session.created_ts),
                "protocol": s.protocol,
                "task": s.task,
                "rep": s.rep,
                "score": s.score,
                "raw": s.raw,
                "scale": s.scale,
                "scale_min": s.scale_min,
                "scale_max": s.scale_max,
                "withheld": s.withheld,
                "model": s.model,
                "version": s.version,
                "first_seq": s.first_seq,
                "last_seq": s.last_seq,
                "scored_at": iso(s.ts),
                "quality": json.dumps(s.quality, sort_keys=True),
                "kinematics": json.dumps(kin.get(s.id, {}), sort_keys=True),
                "rating": rating[0].value if rating else None,
                "rating_note": rating[0].note if rating else None,
                "rated_by": rating[1] if rating else None,
                "rated_at": iso(rating[0].created_ts) if rating else None,
            }
        )
    return rows


def session_csv(db: DbSession, session: Session) -> str:
    return _csv(SCORE_COLUMNS, score_rows(db, [session]))


def patient_history_csv(db: DbSession, patient: Patient) -> str:
    sessions = list(db.scalars(select(Session).where(Session.patient_id == patient.id).order_by(Session.created_ts)))
    return _csv(SCORE_COLUMNS, score_rows(db, sessions))


def labels_csv(db: DbSession, session: Session, patient: Patient) -> str:
    """The clinician ratings of a research-consented session as training labels."""
    if not session.consent_research:
        raise NoResearchConsent("this session has no research consent, so its ratings cannot be exported as labels")
    scores = {
        (s.task, s.rep): s
        for s in db.scalars(select(TaskScore).where(TaskScore.session_id == session.id).order_by(TaskScore.ts))
    }
    rows = []
    for (_sid, task, rep), (rating, _username) in sorted(latest_ratings(db, [session.id]).items()):
        score = scores.get((task, rep))
        rows.append(
            {
                "patient_ref": patient.ref,
                "session_sid": session.sid,
                "protocol": session.protocol,
                "task": task,
                "rep": rep,
                "first_seq": score.first_seq if score else None,
                "last_seq": score.last_seq if score else None,
                "label": rating.value,
                "label_scale": score.scale if score else "",
                "rater_id": rating.user_id,
                "rated_at": iso(rating.created_ts),
                "model_score": score.score if score else None,
                "model": score.model if score else "",
                "version": score.version if score else "",
            }
        )
    return _csv(LABEL_COLUMNS, rows)
