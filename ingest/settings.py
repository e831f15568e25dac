"""Ingest settings, read once from ``FEQA_INGEST_*`` environment variables (lists as JSON)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings import CommonSettings


class IngestSettings(BaseSettings):
    """Everything the ingest service needs: HTTP, ICE, media shaping, sessions, the patient page's pacing."""

    model_config = SettingsConfigDict(env_prefix="FEQA_INGEST_", extra="ignore", frozen=True)

    common: CommonSettings = Field(default_factory=CommonSettings)

    # HTTP
    host: str = Field("127.0.0.1", description="address the HTTP server binds")
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = Field("", description="base of patient join links; default http://host:port")
    api_key: SecretStr | None = Field(None, description="when set, creating sessions needs header X-Api-Key")

    # ICE: no STUN/TURN unless configured; host addresses offered (aioice never offers 127.0.0.1 by itself)
    ice_servers: list[str] = Field(default_factory=list, description='e.g. ["stun:stun.example.org:3478"]')
    turn_username: str | None = None
    turn_credential: SecretStr | None = None
    ice_host_addresses: list[str] = Field(
        default_factory=list, description="local addresses offered as host candidates; empty: every non-loopback one"
    )

    # sessions
    token_ttl_s: float = Field(900.0, gt=0, description="how long a patient join link stays valid")
    page_key_ttl_s: float = Field(
        12 * 3600.0, gt=0, description="longest a joined page may drive its session (the key dies with the session)"
    )
    max_sessions: int = Field(64, ge=1, description="concurrent live peers and uploads")
    connect_timeout_s: float = Field(30.0, gt=0, description="time from answer to first frame")
    idle_timeout_s: float = Field(10.0, gt=0, description="no frame for this long ends the session")
    instance: str = Field("", description="this process's name in ingest leases and health; empty = random")
    lease_ttl_ms: int = Field(5000, ge=300, description="a dead ingest's sessions are ended this long after it died")
    sweep_every_s: float = Field(2.0, gt=0, description="how often to end sessions whose ingest died")
    health_every_s: float = Field(2.0, gt=0, description="how often this process publishes its Health entry")
    end_drain_s: float = Field(
        2.0, ge=0, description="at a session's end, wait this long at most for the tracker to take its last frames"
    )
    max_sdp_bytes: int = Field(64_000, ge=256)

    # media
    max_fps: float = Field(30.0, gt=0, description="frames faster than this are dropped")
    max_width: int = Field(640, ge=16, description="frames wider than this are downscaled")
    encoding: Literal["i420", "rgb24", "jpeg"] = "i420"
    jpeg_quality: int = Field(85, ge=10, le=100)

    # recorded video
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1024)
    fast_backlog: int = Field(30, ge=1, description="fast file ingest waits while the tracker has this many unread")

    # patient page pacing (tests shorten these)
    countdown_s: float = Field(3.0, ge=0)
    hold_s: float | None = Field(None, gt=0, description="override every task's hold time")
    reps: int | None = Field(None, ge=1, description="override every task's repetitions")
    rest_s: float = Field(2.0, ge=0, description="pause between repetitions")

    def join_base(self) -> str:
        """Base URL of patient links."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
