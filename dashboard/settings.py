"""Dashboard settings, read once from ``FEQA_DASHBOARD_*`` environment variables (in ``__main__`` or the CLI)."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from common.errors import ConfigError
from common.settings import CommonSettings, read_secret_file


class DashboardSettings(BaseSettings):
    """The clinician dashboard: HTTP, database, the ingest it asks for patient links, live fan-out, logins."""

    model_config = SettingsConfigDict(env_prefix="FEQA_DASHBOARD_", extra="ignore", frozen=True)

    common: CommonSettings = Field(default_factory=CommonSettings)

    # HTTP
    host: str = Field("127.0.0.1", description="address the HTTP server binds")
    port: int = Field(8001, ge=0, le=65535)
    database_url: str = Field(
        "sqlite:///.feqa/dashboard.sqlite", description="SQLAlchemy URL: a SQLite file, or postgresql+psycopg://..."
    )
    database_password_file: Path | None = Field(
        None, description="file holding the database password (docker secret), put into the URL at start"
    )

    # the ingest that creates sessions and patient links
    ingest_url: str = Field("http://127.0.0.1:8000", description="base URL of the ingest API")
    ingest_api_key: SecretStr | None = Field(None, description="service credential sent as X-Api-Key to the ingest")
    ingest_api_key_file: Path | None = Field(None, description="file holding the ingest service credential")
    ingest_timeout_s: float = Field(10.0, gt=0, description="timeout of one request to the ingest")

    # logins
    cookie_secure: bool = Field(True, description="session cookie only over HTTPS (browsers treat localhost as such)")
    idle_logout_s: float = Field(900.0, gt=0, description="a login with no request for this long is logged out")
    max_login_s: float = Field(12 * 3600.0, gt=0, description="a login ends after this long whatever its use")
    login_attempts: int = Field(5, ge=1, description="failed logins per user name before a lockout")
    lockout_s: float = Field(300.0, gt=0, description="how long a user name is locked after too many failures")

    # live view
    ws_queue: int = Field(512, ge=8, description="messages held per websocket client; a slow client loses its oldest")
    replay_max: int = Field(2000, ge=1, description="most stream entries replayed to a reconnecting client")
    stale_after_s: float = Field(5.0, gt=0, description="a live session with no score for this long shows stale")
    max_watch: int = Field(16, ge=1, description="sessions one websocket may watch at once")

    # score consumer and health
    instance: str = Field("", description="consumer name in the scores group; empty: this host's name")
    reclaim_idle_ms: int = Field(15_000, ge=0, description="pending scores idle this long are taken over")
    drain_after_end_s: float = Field(3600.0, ge=0, description="scores of an ended session are still read this long")
    health_interval_s: float = Field(2.0, gt=0, description="how often health is read and published")
    baseline_sessions: int = Field(3, ge=1, description="default number of first sessions forming a baseline")

    @model_validator(mode="after")
    def _one_key_source(self) -> DashboardSettings:
        if self.ingest_api_key is not None and self.ingest_api_key_file is not None:
            raise ValueError("set FEQA_DASHBOARD_INGEST_API_KEY or FEQA_DASHBOARD_INGEST_API_KEY_FILE, not both")
        if not self.instance:
            object.__setattr__(self, "instance", socket.gethostname())
        return self

    def database_url_with_password(self) -> str:
        """The database URL to connect with: ``database_url`` plus the password from its file when one is set."""
        if self.database_password_file is None:
            return self.database_url
        try:
            url = make_url(self.database_url)
        except ArgumentError as exc:
            raise ConfigError(f"FEQA_DASHBOARD_DATABASE_URL is not a database URL: {exc}") from None
        if url.password is not None:
            raise ConfigError(
                "FEQA_DASHBOARD_DATABASE_URL has a password and FEQA_DASHBOARD_DATABASE_PASSWORD_FILE is set; keep one"
            )
        password = read_secret_file(self.database_password_file, "FEQA_DASHBOARD_DATABASE_PASSWORD_FILE")
        return url.set(password=password).render_as_string(hide_password=False)

    def ingest_key(self) -> str | None:
        """The ingest service credential, from the setting or its file (read at each call, so it can rotate)."""
        if self.ingest_api_key is not None:
            return self.ingest_api_key.get_secret_value()
        if self.ingest_api_key_file is None:
            return None
        try:
            key = self.ingest_api_key_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the ingest key file {self.ingest_api_key_file}: {exc}; "
                "fix FEQA_DASHBOARD_INGEST_API_KEY_FILE"
            ) from None
        if not key:
            raise ConfigError(f"the ingest key file {self.ingest_api_key_file} is empty")
        return key
