"""Fleet analytics settings, read once from ``FEQA_FLEET_*`` environment variables (in ``__main__``)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings import CommonSettings


class FleetSettings(BaseSettings):
    """Fleet analytics on Kafka: the scores bridge from Redis, the Faust agents (baseline band, trend, flag)."""

    model_config = SettingsConfigDict(env_prefix="FEQA_FLEET_", extra="ignore", frozen=True)

    common: CommonSettings = Field(default_factory=CommonSettings)

    # Kafka
    brokers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port...]")
    scores_topic: str = Field("feqa.scores", description="task scores bridged from scores:{sid}, keyed by patient")
    trends_topic: str = Field("feqa.trends", description="each patient-task's band, trend and flag after a score")
    flags_topic: str = Field("feqa.flags", description="deterioration flags raised or cleared (changes only)")
    partitions: int = Field(8, ge=1, le=1024, description="partitions of the topics the agents declare")
    send_timeout_s: float = Field(15.0, gt=0, description="the bridge waits this long for Kafka to take a batch")

    # Faust worker
    app_id: str = Field("feqa-fleet", description="Faust application id (consumer group, changelog topic prefix)")
    web_host: str = Field("127.0.0.1", description="address of the worker's small web server (health check)")
    web_port: int = Field(6066, ge=1, le=65535, description="port of the worker's web server")
    store: str = Field("memory://", description="table store; memory:// rebuilds tables from their changelog")

    # the longitudinal analysis (the dashboard's defaults)
    baseline_sessions: int = Field(3, ge=1, le=100, description="first sessions forming a patient's baseline")
    recent_sessions: int = Field(2, ge=1, le=20, description="newest sessions compared against the baseline")
    band_k: float = Field(2.0, gt=0, description="baseline band half-width in standard deviations")
    max_sessions: int = Field(
        400, ge=4, description="sessions kept per patient and task (oldest after the baseline dropped)"
    )

    # the bridge (Redis side)
    consumer: str = Field("", description="consumer name in the scores group fleet; empty = host-pid")
    read_count: int = Field(200, ge=1, le=10_000, description="score entries read per XREADGROUP")
    block_ms: int = Field(500, ge=1, description="how long one read waits for scores")
    reclaim_idle_ms: int = Field(30_000, ge=0, description="pending scores idle this long are taken over")
    drain_after_end_s: float = Field(3600.0, ge=0, description="scores of an ended session are still read this long")
    health_every_s: float = Field(5.0, gt=0, description="how often the bridge publishes a Health entry")

    @field_validator("brokers")
    @classmethod
    def _brokers(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        if not hosts:
            raise ValueError("FEQA_FLEET_BROKERS needs at least one host:port")
        for h in hosts:
            host, sep, port = h.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"Kafka broker {h!r} is not host:port")
        return ",".join(hosts)

    def broker_list(self) -> list[str]:
        """``host:port`` of each bootstrap server."""
        return self.brokers.split(",")

    def faust_broker(self) -> str:
        """The brokers as Faust names them (``kafka://h1:9092;kafka://h2:9092``)."""
        return ";".join(f"kafka://{b}" for b in self.broker_list())
