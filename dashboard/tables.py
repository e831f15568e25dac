"""The dashboard's database tables (SQLAlchemy 2 ORM). The schema itself is made by the Alembic migrations in
``dashboard/migrations`` (run at start); a test checks that the migrated schema matches these classes.

- ``clinics``, ``users`` (role clinician or admin, argon2 hash), ``logins`` (server-side login sessions: only the
  SHA-256 of the cookie token is stored, with the CSRF token and last use for idle logout);
- ``patients`` (each belongs to one clinic; ``ref`` is the pseudonymous id the pipeline sees, never the name);
- ``sessions`` (the session -> patient -> clinic mapping, consent flags, state, and the patient link until used);
- ``task_scores`` (one row per ``Score.key``: the idempotent target of the scores consumer),
  ``kinematics`` (the task scores' kinematics, one row per value), ``ratings`` (clinician ratings with a note);
- ``audit_log`` (who did what to which record, when, from where).

Times are epoch seconds (float) so SQLite and PostgreSQL store them alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("clinician", "admin")


class Base(DeclarativeBase):
    pass


class Clinic(Base):
    __tablename__ = "clinics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_ts: Mapped[float] = mapped_column(Float)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id"), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[float] = mapped_column(Float, default=0.0)
    created_ts: Mapped[float] = mapped_column(Float)


class Login(Base):
    __tablename__ = "logins"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_ts: Mapped[float] = mapped_column(Float)
    last_seen_ts: Mapped[float] = mapped_column(Float)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("clinic_id", "mrn", name="uq_patients_clinic_mrn"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    mrn: Mapped[str] = mapped_column(String(64))
    birth_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    diagnosis: Mapped[str] = mapped_column(String(200), default="")
    created_ts: Mapped[float] = mapped_column(Float)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class Session(Base):
    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    protocol: Mapped[str] = mapped_column(String(32))
    consent_live_scoring: Mapped[bool] = mapped_column(Boolean)
    consent_recording: Mapped[bool] = mapped_column(Boolean)
    consent_research: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(16), index=True)  # created | live | ended
    created_ts: Mapped[float] = mapped_column(Float)
    started_ts: Mapped[float] = mapped_column(Float, default=0.0)
    ended_ts: Mapped[float] = mapped_column(Float, default=0.0)
    end_reason: Mapped[str] = mapped_column(String(64), default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    join_url: Mapped[str] = mapped_column(Text, default="")  # cleared once the session is live or ended
    join_expires_ts: Mapped[float] = mapped_column(Float, default=0.0)
    note: Mapped[str] = mapped_column(String(500), default="")


class TaskScore(Base):
    __tablename__ = "task_scores"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    protocol: Mapped[str] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(64))
    rep: Mapped[int] = mapped_column(Integer)
    first_seq: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(Integer)
    ts: Mapped[float] = mapped_column(Float)
    capture_ts: Mapped[float] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    raw: Mapped[float | None] = mapped_column(Float, nullable=True)
    scale: Mapped[str] = mapped_column(String(64))
    scale_min: Mapped[float] = mapped_column(Float)
    scale_max: Mapped[float] = mapped_column(Float)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(64))
    withheld: Mapped[str] = mapped_column(String(200), default="")
    quality: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stream_id: Mapped[str] = mapped_column(String(40), default="")


class Kinematic(Base):
    __tablename__ = "kinematics"
    __table_args__ = (UniqueConstraint("task_score_id", "name", name="uq_kinematics_score_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_score_id: Mapped[int] = mapped_column(ForeignKey("task_scores.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)


class Rating(Base):
    __tablename__ = "ratings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(64))
    rep: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_ts: Mapped[float] = mapped_column(Float)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_target", "target_type", "target_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[float] = mapped_column(Float, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[str] = mapped_column(String(64), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    outcome: Mapped[str] = mapped_column(String(32), default="ok")
    detail: Mapped[str] = mapped_column(Text, default="")
