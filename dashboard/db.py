"""The database: engine, sessions, and the Alembic migrations shipped in ``dashboard/migrations`` (run at start).

A SQLite file is the embedded default (WAL, foreign keys on, a busy timeout); PostgreSQL is used by URL
(``postgresql+psycopg://user@host:port/db``). Request handlers run in FastAPI's thread pool and the scores consumer
in a worker thread, so one synchronous engine serves both.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from common.errors import ConfigError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created (0700) when missing."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"FEQA_DASHBOARD_DATABASE_URL is not a database URL: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    raise ConfigError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite:///FILE or postgresql+psycopg://"
    )


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest migration shipped with this code."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise ConfigError("the dashboard package ships no migrations")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to ``revision``."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    log.info("database at revision %s", current_revision(engine))


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database down to ``revision`` (``base`` drops every table)."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


class Database:
    """The engine and a session factory; :meth:`session` is a unit of work (commit on success)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        upgrade(self.engine)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self._factory() as s, s.begin():
            yield s

    def close(self) -> None:
        self.engine.dispose()
