"""Ingest settings, read once from ``FEQA_INGEST_*`` environment variables (lists as JSON).

A service credential is required: ``api_key`` or ``api_key_file`` (``feqa up`` makes the file, ``feqa key rotate``
replaces it). Without either the ingest refuses to start, so no deployment runs with an open API by accident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.errors import ConfigError
from common.settings import CommonSettings


class IngestSettings(BaseSettings):
    """Everything the ingest service needs: HTTP, ICE, media shaping, sessions, the patient page's pacing."""

    model_config = SettingsConfigDict(env_prefix="FEQA_INGEST_", extra="ignore", frozen=True)

    common: CommonSettings = Field(default_factory=CommonSettings)

    # HTTP
    host: str = Field("127.0.0.1", description="address the HTTP server binds")
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = Field("", description="base of patient join links; default http://host:port")
    api_key: SecretStr | None = Field(None, description="service credential (header X-Api-Key) for the session API")
    api_key_file: Path | None = Field(
        None, description="file holding the service credential (re-read when it changes: rotation needs no restart)"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Host headers served; empty: the public URL's host, the bind host, localhost"
    )
    api_docs: bool = Field(False, description="serve the OpenAPI schema at /openapi.json (no docs UI, no CDN)")
    max_json_bytes: int = Field(16_384, ge=1024, description="largest JSON request body (cut while reading)")
    rate_sessions_per_min: float = Field(30.0, gt=0, description="session creations per client per minute")
    rate_uploads_per_min: float = Field(10.0, gt=0, description="uploads per client per minute")
    rate_joins_per_min: float = Field(30.0, gt=0, description="join-link attempts per client per minute")
    redis_memory_admit: float = Field(
        0.8, gt=0, le=1, description="refuse new sessions while Redis uses more than this share of its maxmemory"
    )

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
    resume_grace_s: float = Field(
        15.0, gt=0, description="a dropped connection (reload, network) may resume this long before the session ends"
    )
    max_sdp_bytes: int = Field(64_000, ge=256, description="largest SDP offer")

    # synthetic patients (demo and test deployments only)
    allow_phantom: bool = Field(False, description="accept phantom patient specs on session creation (demo/test)")
    phantom_max_reps: int = Field(5, ge=1, le=50, description="most repetitions per task a phantom spec may ask for")
    phantom_max_s: float = Field(900.0, gt=0, description="longest phantom performance (all tasks and repetitions)")

    # media
    max_fps: float = Field(30.0, gt=0, le=120, description="a stream's frames beyond this rate are dropped")
    max_width: int = Field(640, ge=16, description="frames wider than this are downscaled")
    max_height: int = Field(960, ge=16, description="frames taller than this are downscaled")
    encoding: Literal["i420", "rgb24", "jpeg"] = Field("i420", description="pixel encoding of published frames")
    jpeg_quality: int = Field(85, ge=10, le=100, description="quality when the encoding is jpeg")

    # recorded video
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1024, description="largest upload (cut while reading)")
    min_upload_frames: int = Field(16, ge=1, description="uploads with fewer video frames are refused")
    tracker_wait_s: float = Field(
        10.0, gt=0, description="an upload waits this long for a tracker to take its frames, else ends not_tracked"
    )
    fast_backlog: int = Field(30, ge=1, description="fast file ingest waits while the tracker has this many unread")

    # patient page pacing (tests shorten these)
    countdown_s: float = Field(3.0, ge=0, description="countdown before each task")
    hold_s: float | None = Field(None, gt=0, description="override every task's hold time")
    reps: int | None = Field(None, ge=1, description="override every task's repetitions")
    rest_s: float = Field(2.0, ge=0, description="pause between repetitions")

    @model_validator(mode="after")
    def _one_key_source(self) -> IngestSettings:
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("set FEQA_INGEST_API_KEY or FEQA_INGEST_API_KEY_FILE, not both")
        return self

    def require_credential(self) -> None:
        """Raise :class:`ConfigError` unless a service credential is configured (checked when the app starts)."""
        if self.api_key is None and self.api_key_file is None:
            raise ConfigError(
                "the ingest needs a service key: set FEQA_INGEST_API_KEY_FILE (feqa up creates .feqa/ingest.key) or "
                "FEQA_INGEST_API_KEY; every session call must carry it as the X-Api-Key header"
            )

    def join_base(self) -> str:
        """Base URL of patient links."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
