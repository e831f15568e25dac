"""Base settings shared by every service, read from ``FEQA_*`` environment variables.

Each service defines its own settings class with its own prefix (``FEQA_INGEST_``, ``FEQA_TRACKER_`` ...) and
embeds :class:`CommonSettings` for what all services share. Settings are read once, in ``__main__``.

Secrets can come from files (docker secrets, a 0600 file): a service names them with a ``*_FILE`` setting
(``FEQA_INGEST_API_KEY_FILE``, ``FEQA_DASHBOARD_DATABASE_PASSWORD_FILE``) and reads them with
:func:`read_secret_file`, which refuses a missing, unreadable or empty file with what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.errors import ConfigError

MAX_SECRET_BYTES = 4096


class CommonSettings(BaseSettings):
    """What every service needs: where Redis is, how to log, where model artifacts live."""

    model_config = SettingsConfigDict(env_prefix="FEQA_", extra="ignore", frozen=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL of the stream bus")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: Literal["text", "json"] = Field("text", description="text for people, json for log collectors")
    models_dir: Path = Field(Path("models"), description="root of models/<name>/<version>/ artifacts")
    reconnect_budget_s: float = Field(
        30.0, gt=0, description="seconds a service retries Redis (with backoff) before giving up"
    )
    redis_connect_timeout_s: float = Field(2.0, gt=0, description="TCP connect timeout to Redis")
    redis_socket_timeout_s: float = Field(
        5.0, gt=0, description="wait for each Redis reply; blocking reads must block for less than this"
    )
    obs_retention_s: int = Field(
        3600, ge=0, description="how long observations (landmarks) stay in Redis after a session ends; 0: deleted"
    )
    session_retention_s: int = Field(
        7 * 24 * 3600, ge=0, description="how long a session's hash, events, windows and scores stay after its end"
    )
    launcher_pid: int = Field(
        0, ge=0, description="set by feqa up / feqa demo: the service stops once that process is gone; 0: no watch"
    )


class ServiceSettings(BaseSettings):
    """Base of per-service settings; subclasses set ``env_prefix`` and add their own fields."""

    model_config = SettingsConfigDict(env_prefix="FEQA_SERVICE_", extra="ignore", frozen=True)

    common: CommonSettings = Field(default_factory=CommonSettings)


def read_secret_file(path: Path, variable: str) -> str:
    """The secret held in ``path`` (surrounding whitespace stripped), for the setting ``variable``.

    :class:`ConfigError` when the file is missing, unreadable, empty or too large to be a secret."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot read {variable}={path}: {reason}; point it at the secret's file") from None
    if len(raw) > MAX_SECRET_BYTES:
        raise ConfigError(f"{variable}={path} holds more than {MAX_SECRET_BYTES} bytes; is it the right file?")
    try:
        secret = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{variable}={path} is not UTF-8 text; is it the right file?") from None
    if not secret:
        raise ConfigError(f"{variable}={path} is empty; write the secret into it")
    return secret
