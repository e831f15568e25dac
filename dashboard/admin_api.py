"""Admin API: clinics, user accounts and the audit log (admins only; every change is audited)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from dashboard import audit
from dashboard.access import DB_IDS, AdminCaller, AdminViewer, State
from dashboard.accounts import create_clinic, create_user, generate_password
from dashboard.tables import Clinic, User

router = APIRouter()


class NewClinic(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class NewUser(BaseModel):
    username: str = Field(min_length=3, max_length=64)
    full_name: str = Field("", max_length=200)
    role: Literal["clinician", "admin"] = "clinician"
    clinic_id: int | None = None


@router.get("/api/admin/clinics")
def clinics(caller: AdminViewer, state: State) -> list[dict[str, Any]]:
    with state.db.session() as db:
        return [{"id": c.id, "name": c.name} for c in db.scalars(select(Clinic).order_by(Clinic.name))]


@router.post("/api/admin/clinics", status_code=201)
def add_clinic(body: NewClinic, caller: AdminCaller, state: State) -> dict[str, Any]:
    with state.db.session() as db:
        clinic = create_clinic(db, body.name)
        audit.record(db, caller, "add_clinic", "clinic", clinic.id, detail=clinic.name)
        return {"id": clinic.id, "name": clinic.name}


@router.get("/api/admin/users")
def users(caller: AdminViewer, state: State) -> list[dict[str, Any]]:
    with state.db.session() as db:
        return [
            {
                "id": u.id,
                "username": u.username,
                "full_name": u.full_name,
                "role": u.role,
                "clinic_id": u.clinic_id,
                "active": u.active,
            }
            for u in db.scalars(select(User).order_by(User.username))
        ]


@router.post("/api/admin/users", status_code=201)
def add_user(body: NewUser, caller: AdminCaller, state: State) -> dict[str, Any]:
    """A new account with a generated password, returned once in this answer (it is stored only as a hash)."""
    password = generate_password()
    with state.db.session() as db:
        clinic = db.get(Clinic, body.clinic_id) if body.clinic_id is not None and body.clinic_id in DB_IDS else None
        if body.clinic_id is not None and clinic is None:
            raise HTTPException(404, f"no clinic {body.clinic_id}")
        user = create_user(db, body.username, password, body.role, clinic, body.full_name)
        audit.record(db, caller, "add_user", "user", user.id, detail=f"{user.username} ({user.role})")
        return {"id": user.id, "username": user.username, "role": user.role, "password": password}


@router.get("/api/admin/audit")
def audit_log(
    caller: AdminViewer,
    state: State,
    limit: int = Query(200, ge=1, le=5000),
    target_type: str = Query("", max_length=32),
    target_id: str = Query("", max_length=64),
) -> list[dict[str, Any]]:
    with state.db.session() as db:
        rows = audit.recent(db, limit, target_type=target_type, target_id=target_id)
        audit.record(db, caller, "view_audit", "audit", "", detail=f"{target_type}:{target_id}")
        return [
            {
                "id": a.id,
                "ts": a.ts,
                "user": a.username,
                "action": a.action,
                "target_type": a.target_type,
                "target_id": a.target_id,
                "ip": a.ip,
                "outcome": a.outcome,
                "detail": a.detail,
            }
            for a in rows
        ]
