"""The patient registry API: list and add the clinic's patients, one patient's record, the longitudinal view per
task, and the patient's history as CSV. Every view is written to the audit log.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from common.longitudinal import analyse
from common.protocols import get_protocol
from dashboard import audit, exports
from dashboard.access import ApiCaller, CsrfCaller, State, patient_for
from dashboard.logins import Caller
from dashboard.tables import Patient, Session, TaskScore

router = APIRouter()


class NewPatient(BaseModel):
    display_name: str = Field(min_length=1, max_length=200)
    mrn: str = Field(min_length=1, max_length=64, description="the clinic's record number")
    birth_year: int | None = Field(None, ge=1900, le=2100)
    diagnosis: str = Field("", max_length=200)


def patient_json(p: Patient) -> dict[str, Any]:
    return {
        "id": p.id,
        "ref": p.ref,
        "display_name": p.display_name,
        "mrn": p.mrn,
        "birth_year": p.birth_year,
        "diagnosis": p.diagnosis,
        "created_ts": p.created_ts,
    }


def session_json(s: Session) -> dict[str, Any]:
    return {
        "id": s.id,
        "sid": s.sid,
        "patient_id": s.patient_id,
        "protocol": s.protocol,
        "consent": {
            "live_scoring": s.consent_live_scoring,
            "recording": s.consent_recording,
            "research": s.consent_research,
        },
        "state": s.state,
        "created_ts": s.created_ts,
        "started_ts": s.started_ts,
        "ended_ts": s.ended_ts,
        "end_reason": s.end_reason,
    }


def _clinic_of(caller: Caller) -> int:
    if caller.clinic_id is None:
        raise HTTPException(403, "your account belongs to no clinic, so it sees no patients; ask an admin")
    return caller.clinic_id


@router.get("/api/patients")
def list_patients(caller: ApiCaller, state: State, q: str = Query("", max_length=100)) -> list[dict[str, Any]]:
    clinic = _clinic_of(caller)
    with state.db.session() as db:
        query = select(Patient).where(Patient.clinic_id == clinic).order_by(Patient.display_name)
        if q:
            like = f"%{q.lower()}%"
            query = query.where(func.lower(Patient.display_name).like(like) | func.lower(Patient.mrn).like(like))
        rows = list(db.scalars(query.limit(500)))
        last = dict(
            db.execute(
                select(Session.patient_id, func.max(Session.created_ts))
                .where(Session.clinic_id == clinic)
                .group_by(Session.patient_id)
            ).all()
        )
        audit.record(db, caller, "view_patient_list", "clinic", clinic, detail=f"{len(rows)} patients; q={q!r}")
        return [{**patient_json(p), "last_session_ts": last.get(p.id)} for p in rows]


@router.post("/api/patients", status_code=201)
def add_patient(body: NewPatient, caller: CsrfCaller, state: State) -> dict[str, Any]:
    clinic = _clinic_of(caller)
    with state.db.session() as db:
        mrn = body.mrn.strip()
        clash = db.scalar(select(Patient).where(Patient.clinic_id == clinic, Patient.mrn == mrn))
        if clash is not None:
            raise HTTPException(409, f"record number {mrn!r} belongs to patient {clash.id} already")
        patient = Patient(
            clinic_id=clinic,
            ref="pt-" + secrets.token_hex(8),
            display_name=body.display_name.strip(),
            mrn=mrn,
            birth_year=body.birth_year,
            diagnosis=body.diagnosis.strip(),
            created_ts=time.time(),
            created_by=caller.user_id,
        )
        db.add(patient)
        db.flush()
        audit.record(db, caller, "add_patient", "patient", patient.id)
        return patient_json(patient)


@router.get("/api/patients/{patient_id}")
def get_patient(patient_id: int, caller: ApiCaller, state: State) -> dict[str, Any]:
    with state.db.session() as db:
        patient = patient_for(db, caller, patient_id)
        sessions = db.scalars(
            select(Session).where(Session.patient_id == patient.id).order_by(Session.created_ts.desc())
        )
        tasks = sorted(
            {
                (proto, task)
                for proto, task in db.execute(
                    select(TaskScore.protocol, TaskScore.task)
                    .join(Session, TaskScore.session_id == Session.id)
                    .where(Session.patient_id == patient.id)
                ).all()
            }
        )
        audit.record(db, caller, "view_patient", "patient", patient.id)
        return {
            "patient": patient_json(patient),
            "sessions": [session_json(s) for s in sessions],
            "tasks": [{"protocol": p, "task": t} for p, t in tasks],
        }


def _task_history(
    db: DbSession, patient: Patient, protocol: str, task: str
) -> tuple[list[float], list[list[float | None]]]:
    rows = db.execute(
        select(Session.id, Session.created_ts, TaskScore.score)
        .join(TaskScore, TaskScore.session_id == Session.id)
        .where(Session.patient_id == patient.id, TaskScore.protocol == protocol, TaskScore.task == task)
        .order_by(Session.created_ts)
    ).all()
    by_session: dict[int, tuple[float, list[float | None]]] = {}
    for sess_id, ts, score in rows:
        by_session.setdefault(sess_id, (ts, []))[1].append(score)
    ordered = sorted(by_session.values(), key=lambda item: item[0])
    return [ts for ts, _ in ordered], [scores for _, scores in ordered]


def _day(text: str, end: bool) -> float:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise HTTPException(422, f"{text!r} is not a date (YYYY-MM-DD)") from None
    moment = dt.datetime.combine(day, dt.time.max if end else dt.time.min, tzinfo=dt.UTC)
    return moment.timestamp()


@router.get("/api/patients/{patient_id}/longitudinal")
def longitudinal(
    patient_id: int,
    caller: ApiCaller,
    state: State,
    protocol: str = Query(..., max_length=32),
    task: str = Query(..., max_length=64),
    first_n: int | None = Query(None, ge=1, le=100),
    start: str = Query("", max_length=10, description="baseline period start (YYYY-MM-DD)"),
    end: str = Query("", max_length=10, description="baseline period end (YYYY-MM-DD)"),
    recent_n: int = Query(2, ge=1, le=20),
) -> dict[str, Any]:
    proto = get_protocol(protocol)
    proto.task(task)
    period = None
    if start or end:
        if not (start and end):
            raise HTTPException(422, "a baseline period needs both start and end")
        period = (_day(start, False), _day(end, True))
        if period[1] < period[0]:
            raise HTTPException(422, "the baseline period ends before it starts")
    with state.db.session() as db:
        patient = patient_for(db, caller, patient_id)
        ts, scores = _task_history(db, patient, protocol, task)
        result = analyse(
            ts,
            scores,
            scale_min=proto.scale.min,
            scale_max=proto.scale.max,
            first_n=first_n or state.settings.baseline_sessions,
            period=period,
            recent_n=recent_n,
        )
        audit.record(db, caller, "view_history", "patient", patient.id, detail=f"{protocol}/{task}")
        return {
            "protocol": protocol,
            "task": task,
            "scale": {"min": proto.scale.min, "max": proto.scale.max},
            **result.as_dict(),
        }


@router.get("/api/patients/{patient_id}/history.csv")
def history_csv(patient_id: int, request: Request, caller: ApiCaller, state: State) -> Response:
    with state.db.session() as db:
        patient = patient_for(db, caller, patient_id)
        text = exports.patient_history_csv(db, patient)
        audit.record(db, caller, "export_history_csv", "patient", patient.id)
    name = f"feqa-patient-{patient.id}-history.csv"
    return Response(text, media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'})
