"""Secrets from files on real servers: the ingest refuses requests without the key read from its file, and the
dashboard logs in to a password-protected PostgreSQL with the password from its file (and only with it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from common.settings import CommonSettings
from dashboard.db import Database, current_revision, head_revision
from dashboard.settings import DashboardSettings
from infra.redis_server import RedisServer
from ingest.app import create_app
from ingest.settings import IngestSettings
from tests.dashboard_kit.postgres import postgres_problem, postgres_server

pytestmark = pytest.mark.integration


async def test_the_ingest_needs_the_key_from_its_file(redis_server: RedisServer, tmp_path: Path) -> None:
    import httpx

    key = tmp_path / "ingest_api_key"
    key.write_text("file-key-0123456789-42\n")
    settings = IngestSettings(common=CommonSettings(redis_url=redis_server.url), api_key_file=key,
                              ice_host_addresses=["127.0.0.1"])  # fmt: skip
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as http,
    ):
        body = {"patient_id": "p1", "protocol": "pfed5"}
        assert (await http.post("/api/sessions", json=body)).status_code == 401
        assert (await http.post("/api/sessions", json=body, headers={"X-Api-Key": "wrong"})).status_code == 401
        ok = await http.post("/api/sessions", json=body, headers={"X-Api-Key": "file-key-0123456789-42"})
        assert ok.status_code == 201, ok.text


def test_the_dashboard_logs_in_to_postgresql_with_the_password_file(tmp_path: Path) -> None:
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    secret = "pg s3cret:/@"
    with postgres_server(password=secret) as url:
        pw = tmp_path / "dashboard_db_password"
        pw.write_text(secret + "\n")
        without = Database(DashboardSettings(database_url=url).database_url_with_password())
        with pytest.raises(OperationalError, match="password"):
            without.migrate()
        without.close()
        db = Database(DashboardSettings(database_url=url, database_password_file=pw).database_url_with_password())
        db.migrate()
        assert current_revision(db.engine) == head_revision()
        assert secret not in db.engine.url.render_as_string()  # logs show the URL without it
        db.close()
