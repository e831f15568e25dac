"""Initial schema: clinics, users, logins, patients, sessions, task scores, kinematics, ratings, audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clinics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_ts", sa.Float, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("clinic_id", sa.Integer, sa.ForeignKey("clinics.id"), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("failed_logins", sa.Integer, nullable=False),
        sa.Column("locked_until", sa.Float, nullable=False),
        sa.Column("created_ts", sa.Float, nullable=False),
    )
    op.create_table(
        "logins",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_ts", sa.Float, nullable=False),
        sa.Column("last_seen_ts", sa.Float, nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(300), nullable=False),
    )
    op.create_index("ix_logins_user_id", "logins", ["user_id"])
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("clinic_id", sa.Integer, sa.ForeignKey("clinics.id"), nullable=False),
        sa.Column("ref", sa.String(32), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("mrn", sa.String(64), nullable=False),
        sa.Column("birth_year", sa.Integer, nullable=True),
        sa.Column("diagnosis", sa.String(200), nullable=False),
        sa.Column("created_ts", sa.Float, nullable=False),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.UniqueConstraint("clinic_id", "mrn", name="uq_patients_clinic_mrn"),
    )
    op.create_index("ix_patients_clinic_id", "patients", ["clinic_id"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sid", sa.String(64), nullable=False, unique=True),
        sa.Column("patient_id", sa.Integer, sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("clinic_id", sa.Integer, sa.ForeignKey("clinics.id"), nullable=False),
        sa.Column("protocol", sa.String(32), nullable=False),
        sa.Column("consent_live_scoring", sa.Boolean, nullable=False),
        sa.Column("consent_recording", sa.Boolean, nullable=False),
        sa.Column("consent_research", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_ts", sa.Float, nullable=False),
        sa.Column("started_ts", sa.Float, nullable=False),
        sa.Column("ended_ts", sa.Float, nullable=False),
        sa.Column("end_reason", sa.String(64), nullable=False),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("join_url", sa.Text, nullable=False),
        sa.Column("join_expires_ts", sa.Float, nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
    )
    op.create_index("ix_sessions_patient_id", "sessions", ["patient_id"])
    op.create_index("ix_sessions_clinic_id", "sessions", ["clinic_id"])
    op.create_index("ix_sessions_state", "sessions", ["state"])
    op.create_table(
        "task_scores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("protocol", sa.String(32), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("rep", sa.Integer, nullable=False),
        sa.Column("first_seq", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("capture_ts", sa.Float, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("raw", sa.Float, nullable=True),
        sa.Column("scale", sa.String(64), nullable=False),
        sa.Column("scale_min", sa.Float, nullable=False),
        sa.Column("scale_max", sa.Float, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("withheld", sa.String(200), nullable=False),
        sa.Column("quality", sa.JSON, nullable=False),
        sa.Column("stream_id", sa.String(40), nullable=False),
    )
    op.create_index("ix_task_scores_session_id", "task_scores", ["session_id"])
    op.create_table(
        "kinematics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_score_id", sa.Integer, sa.ForeignKey("task_scores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.UniqueConstraint("task_score_id", "name", name="uq_kinematics_score_name"),
    )
    op.create_index("ix_kinematics_task_score_id", "kinematics", ["task_score_id"])
    op.create_index("ix_kinematics_session_id", "kinematics", ["session_id"])
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("rep", sa.Integer, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_ts", sa.Float, nullable=False),
    )
    op.create_index("ix_ratings_session_id", "ratings", ["session_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(300), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_log_ts", "audit_log", ["ts"])
    op.create_index("ix_audit_target", "audit_log", ["target_type", "target_id"])


def downgrade() -> None:
    for table in ("audit_log", "ratings", "kinematics", "task_scores", "sessions", "patients", "logins", "users"):
        op.drop_table(table)
    op.drop_table("clinics")
