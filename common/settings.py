"""Base settings shared by every service, read from ``FEQA_*`` environment variables.

Each service defines its own settings class with its own prefix (``FEQA_INGEST_``, ``FEQA_TRACKER_`` ...) and
embeds :class:`CommonSettings` for what all services share. Settings are read once, in ``__main__``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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


class ServiceSettings(BaseSettings):
    """Base of per-service settings; subclasses set ``env_prefix`` and add their own fields."""

    model_config = SettingsConfigDict(env_prefix="FEQA_SERVICE_", extra="ignore", frozen=True)

    common: CommonSettings = Field(default_factory=CommonSettings)
