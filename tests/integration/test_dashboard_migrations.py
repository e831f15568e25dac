"""Migrations up and down on SQLite and PostgreSQL; the migrated schema is exactly the ORM tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from dashboard.accounts import create_clinic, create_user
from dashboard.db import Database, current_revision, downgrade, head_revision, upgrade
from dashboard.store import write_task_scores
from dashboard.tables import Base, Patient, Session, TaskScore
from tests.dashboard_kit import PASSWORD, score, sqlite_url
from tests.dashboard_kit.postgres import postgres_problem, postgres_server

pytestmark = pytest.mark.integration

TABLES = {"clinics", "users", "logins", "patients", "sessions", "task_scores", "kinematics", "ratings", "audit_log"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    with postgres_server() as url:
        yield url


def test_migrations_up_down_and_the_schema_matches_the_tables(database_url: str) -> None:
    db = Database(database_url)
    assert current_revision(db.engine) is None
    upgrade(db.engine)
    assert current_revision(db.engine) == head_revision()
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []
    # the schema works: accounts, a patient, a session, an idempotent score write
    with db.session() as s:
        clinic = create_clinic(s, "C")
        user = create_user(s, "carol", PASSWORD, "clinician", clinic)
        patient = Patient(
            clinic_id=clinic.id, ref="pt-1", display_name="P", mrn="1", created_ts=1.0, created_by=user.id
        )
        s.add(patient)
        s.flush()
        s.add(
            Session(
                sid="sm1",
                patient_id=patient.id,
                clinic_id=clinic.id,
                protocol="pfed5",
                consent_live_scoring=True,
                consent_recording=False,
                consent_research=True,
                state="live",
                created_ts=1.0,
                started_ts=1.0,
                ended_ts=0.0,
                end_reason="",
                join_url="",
                join_expires_ts=0.0,
                note="",
            )
        )
    task = score("sm1", kind="task", last_seq=10)
    with db.session() as s:
        assert write_task_scores(s, [("1-0", task)]) == (1, 0)
    with db.session() as s:
        assert write_task_scores(s, [("1-0", task)]) == (0, 1)
        assert s.query(TaskScore).count() == 1
    downgrade(db.engine, "base")
    assert current_revision(db.engine) is None
    assert not TABLES & set(inspect(db.engine).get_table_names())
    upgrade(db.engine)  # and up again from nothing
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    db.close()
