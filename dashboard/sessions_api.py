"""The sessions API: start a session for a patient (the ingest makes the patient link, shown as a QR code), end it,
list live and past sessions, one session's record, the multi-patient console, clinician ratings, and exports.
"""

from __future__ import annotations

import io
import time
from typing import Any, Literal

import segno
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from common.messages import Consent
from common.protocols import get_protocol
from common.streams import SCORES
from dashboard import audit, exports, report
from dashboard.access import ApiCaller, CsrfCaller, State, patient_for, session_for
from dashboard.ingest_client import IngestRefused
from dashboard.patients_api import patient_json, session_json
from dashboard.tables import Patient, Rating, Session, TaskScore, User

router = APIRouter()


class NewSession(BaseModel):
    protocol: str = Field(max_length=32)
    consent: dict[str, bool] = Field(default_factory=dict)
    note: str = Field("", max_length=500)


class NewRating(BaseModel):
    task: str = Field(min_length=1, max_length=64)
    rep: int = Field(0, ge=0, le=1000)
    value: float
    note: str = Field("", max_length=2000)


def _attachment(body: bytes | str, media: str, name: str) -> Response:
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/api/patients/{patient_id}/sessions", status_code=201)
async def start_session(patient_id: int, body: NewSession, caller: CsrfCaller, state: State) -> dict[str, Any]:
    protocol = get_protocol(body.protocol)
    try:
        consent = Consent.from_mapping(body.consent)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None

    def patient_ref() -> tuple[str, int]:
        with state.db.session() as db:
            patient = patient_for(db, caller, patient_id)
            return patient.ref, patient.clinic_id

    ref, clinic = await run_in_threadpool(patient_ref)
    created = await state.ingest.create_session(ref, protocol.name, consent)

    def store() -> dict[str, Any]:
        with state.db.session() as db:
            row = Session(
                sid=str(created["sid"]),
                patient_id=patient_id,
                clinic_id=clinic,
                protocol=protocol.name,
                consent_live_scoring=consent.live_scoring,
                consent_recording=consent.recording,
                consent_research=consent.research,
                state="created",
                created_ts=time.time(),
                started_ts=0.0,
                ended_ts=0.0,
                end_reason="",
                created_by=caller.user_id,
                join_url=str(created["join_url"]),
                join_expires_ts=float(created["expires_at"]),
                note=body.note,
            )
            db.add(row)
            db.flush()
            audit.record(db, caller, "start_session", "session", row.id, detail=f"{protocol.name} {consent.as_dict()}")
            return {**session_json(row), "join_url": row.join_url, "join_expires_ts": row.join_expires_ts}

    return await run_in_threadpool(store)


@router.get("/api/sessions")
def list_sessions(
    caller: ApiCaller, state: State, which: Literal["live", "past", "all"] = "all", limit: int = Query(200, le=1000)
) -> list[dict[str, Any]]:
    with state.db.session() as db:
        query = (
            select(Session, Patient.display_name)
            .join(Patient, Session.patient_id == Patient.id)
            .where(Session.clinic_id == (caller.clinic_id or -1))
            .order_by(Session.created_ts.desc())
            .limit(limit)
        )
        if which == "live":
            query = query.where(Session.state != "ended")
        elif which == "past":
            query = query.where(Session.state == "ended")
        rows = [{**session_json(s), "patient_name": name} for s, name in db.execute(query).all()]
        audit.record(db, caller, "view_session_list", "clinic", caller.clinic_id or "", detail=which)
        return rows


def session_detail(state: State, caller: Any, session_id: int, action: str = "view_session") -> dict[str, Any]:
    with state.db.session() as db:
        row = session_for(db, caller, session_id)
        patient = db.get(Patient, row.patient_id)
        scores = list(db.scalars(select(TaskScore).where(TaskScore.session_id == row.id).order_by(TaskScore.ts)))
        kin = exports.kinematics_of(db, [s.id for s in scores])
        ratings = db.execute(
            select(Rating, User.username)
            .join(User, Rating.user_id == User.id)
            .where(Rating.session_id == row.id)
            .order_by(Rating.created_ts)
        ).all()
        audit.record(db, caller, action, "session", row.id)
        join = row.join_url if row.state == "created" and row.join_expires_ts > time.time() else ""
        return {
            "session": {**session_json(row), "join_url": join, "join_expires_ts": row.join_expires_ts if join else 0},
            "patient": patient_json(patient) if patient else None,
            "task_scores": [
                {
                    "id": s.id,
                    "task": s.task,
                    "rep": s.rep,
                    "ts": s.ts,
                    "score": s.score,
                    "raw": s.raw,
                    "withheld": s.withheld,
                    "model": s.model,
                    "version": s.version,
                    "quality": s.quality,
                    "kinematics": kin.get(s.id, {}),
                    "first_seq": s.first_seq,
                    "last_seq": s.last_seq,
                }
                for s in scores
            ],
            "ratings": [
                {
                    "id": r.id,
                    "task": r.task,
                    "rep": r.rep,
                    "value": r.value,
                    "note": r.note,
                    "by": name,
                    "ts": r.created_ts,
                }
                for r, name in ratings
            ],
        }


@router.get("/api/sessions/{session_id}")
def get_session(session_id: int, caller: ApiCaller, state: State) -> dict[str, Any]:
    return session_detail(state, caller, session_id)


@router.get("/api/sessions/{session_id}/qr.svg")
def join_qr(session_id: int, caller: ApiCaller, state: State) -> Response:
    with state.db.session() as db:
        row = session_for(db, caller, session_id)
        if row.state != "created" or row.join_expires_ts <= time.time() or not row.join_url:
            raise HTTPException(410, "the patient link was used or has expired; start a new session for a new link")
        audit.record(db, caller, "view_join_link", "session", row.id)
        url = row.join_url
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=6, border=2, xmldecl=False)
    return Response(out.getvalue(), media_type="image/svg+xml")


@router.post("/api/sessions/{session_id}/end")
async def end_session(session_id: int, caller: CsrfCaller, state: State) -> dict[str, Any]:
    def lookup() -> tuple[str, str]:
        with state.db.session() as db:
            row = session_for(db, caller, session_id)
            return row.sid, row.state

    sid, current = await run_in_threadpool(lookup)
    if current != "ended":
        try:
            await state.ingest.stop_session(sid)
        except IngestRefused as exc:
            if exc.upstream != 404:  # the ingest no longer knows it (e.g. Redis was wiped): end it here anyway
                raise

    def mark() -> dict[str, Any]:
        with state.db.session() as db:
            row = session_for(db, caller, session_id)
            if row.state != "ended":
                row.state, row.ended_ts, row.end_reason, row.join_url = "ended", time.time(), "clinician", ""
            audit.record(db, caller, "end_session", "session", row.id)
            return session_json(row)

    return await run_in_threadpool(mark)


@router.post("/api/sessions/{session_id}/ratings", status_code=201)
def add_rating(session_id: int, body: NewRating, caller: CsrfCaller, state: State) -> dict[str, Any]:
    with state.db.session() as db:
        row = session_for(db, caller, session_id)
        protocol = get_protocol(row.protocol)
        protocol.task(body.task)
        scale = protocol.scale
        if not scale.contains(body.value):
            raise HTTPException(422, f"a {protocol.name} rating is on the scale {scale.label}; got {body.value:g}")
        if scale.integer and body.value != round(body.value):
            raise HTTPException(422, f"the {scale.name} scale takes whole numbers; got {body.value:g}")
        rating = Rating(
            session_id=row.id,
            task=body.task,
            rep=body.rep,
            value=float(body.value),
            note=body.note.strip(),
            user_id=caller.user_id,
            created_ts=time.time(),
        )
        db.add(rating)
        db.flush()
        audit.record(db, caller, "rate", "session", row.id, detail=f"{body.task} rep {body.rep}: {body.value:g}")
        return {
            "id": rating.id,
            "task": rating.task,
            "rep": rating.rep,
            "value": rating.value,
            "note": rating.note,
            "by": caller.username,
            "ts": rating.created_ts,
        }


@router.get("/api/sessions/{session_id}/scores.csv")
def scores_csv(session_id: int, caller: ApiCaller, state: State) -> Response:
    with state.db.session() as db:
        row = session_for(db, caller, session_id)
        text = exports.session_csv(db, row)
        audit.record(db, caller, "export_csv", "session", row.id)
    return _attachment(text, "text/csv", f"feqa-session-{row.id}.csv")


@router.get("/api/sessions/{session_id}/labels.csv")
def labels_csv(session_id: int, caller: ApiCaller, state: State) -> Response:
    with state.db.session() as db:
        row = session_for(db, caller, session_id)
        patient = db.get(Patient, row.patient_id)
        if patient is None:
            raise HTTPException(404, f"no session {session_id}")
        text = exports.labels_csv(db, row, patient)
        audit.record(db, caller, "export_labels", "session", row.id)
    return _attachment(text, "text/csv", f"feqa-session-{row.id}-labels.csv")


@router.get("/api/sessions/{session_id}/report.pdf")
async def report_pdf(session_id: int, caller: ApiCaller, state: State) -> Response:
    detail = await run_in_threadpool(session_detail, state, caller, session_id, "export_pdf")
    sid = detail["session"]["sid"]
    windows = [d.message for d in await state.bus.latest(SCORES, sid, 12_000)]
    pdf = await run_in_threadpool(report.session_pdf, detail, windows)
    return _attachment(pdf, "application/pdf", f"feqa-session-{session_id}.pdf")


@router.get("/api/console")
async def console(caller: ApiCaller, state: State) -> list[dict[str, Any]]:
    """Every live (or waiting) session of the clinic with its newest score, for the multi-patient console."""

    def live() -> list[dict[str, Any]]:
        with state.db.session() as db:
            rows = db.execute(
                select(Session, Patient.display_name)
                .join(Patient, Session.patient_id == Patient.id)
                .where(Session.clinic_id == (caller.clinic_id or -1), Session.state != "ended")
                .order_by(Session.created_ts)
            ).all()
            out = [{**session_json(s), "patient_name": name} for s, name in rows]
            audit.record(db, caller, "view_console", "clinic", caller.clinic_id or "", detail=f"{len(out)} sessions")
            return out

    sessions = await run_in_threadpool(live)
    now = time.time()
    for item in sessions:
        newest = await state.bus.latest(SCORES, item["sid"], 1)
        last = newest[-1].message if newest else None
        item["last"] = (
            {
                "ts": last.ts,
                "age_s": round(now - last.ts, 1),
                "task": last.task,
                "score": last.score,
                "withheld": last.withheld,
                "quality": last.quality,
            }
            if last
            else None
        )
        item["stale"] = item["state"] == "live" and (last is None or now - last.ts > state.settings.stale_after_s)
    return sessions
