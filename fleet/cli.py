"""The ``fleet`` click group: ``bridge`` (Redis scores to Kafka) and ``worker`` (the Faust agents).

Registered under ``feqa`` by the composition root and run by ``python -m fleet``; needs the ``fleet`` extra
(``pip install 'feqa[fleet]'``; ``infra/setup.sh`` installs it).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import signal
import socket
import sys

import click
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from common.bus import Bus
from common.errors import FeqaError
from common.logs import setup_logging
from common.settings import CommonSettings
from fleet.settings import FleetSettings

log = logging.getLogger(__name__)


def _need_extra() -> None:
    # faust replaces its module object once imported (its __spec__ is then None and find_spec raises)
    if not all(name in sys.modules or importlib.util.find_spec(name) is not None for name in ("faust", "aiokafka")):
        click.echo(
            "fleet: faust-streaming is not installed; install the fleet extra: pip install 'feqa[fleet]'", err=True
        )
        sys.exit(2)


def load_settings(command: str) -> FleetSettings:
    """The settings, or exit 2 naming each bad environment variable and why."""
    try:
        return FleetSettings()
    except ValidationError as exc:
        owner: type[BaseSettings] = CommonSettings if exc.title == CommonSettings.__name__ else FleetSettings
        prefix = str(owner.model_config.get("env_prefix", ""))
        lines = [f"  {prefix}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()]
        click.echo(f"fleet {command}: bad settings; fix these environment variables:\n" + "\n".join(lines), err=True)
        sys.exit(2)


def unreachable_brokers(brokers: list[str], timeout_s: float) -> str | None:
    """None when a TCP connection to one of ``brokers`` opens within ``timeout_s``, else why none did."""
    why = []
    for hostport in brokers:
        host, _sep, port = hostport.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
            return None
        except OSError as exc:
            why.append(f"{hostport}: {exc.strerror or type(exc).__name__}")
    return "; ".join(why)


@click.group(name="fleet")
def cli() -> None:
    """Fleet analytics on Kafka: the scores bridge and the Faust agents (baseline band, trend, flag)."""


@cli.command()
def bridge() -> None:
    """Send every session's task scores from Redis to the Kafka scores topic (at least once)."""
    _need_extra()
    settings = load_settings("bridge")
    setup_logging(settings.common.log_level, settings.common.log_format)
    try:
        asyncio.run(serve_bridge(settings))
    except FeqaError as exc:
        click.echo(f"fleet bridge: {exc}", err=True)
        sys.exit(2)


async def serve_bridge(settings: FleetSettings, stop: asyncio.Event | None = None) -> None:
    """Connect to Redis and Kafka and bridge until SIGTERM/SIGINT (or ``stop``)."""
    from fleet.bridge import ScoresBridge
    from fleet.producer import KafkaProducer

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer = settings.consumer or f"{socket.gethostname()}-{os.getpid()}"
    bus = await Bus.from_settings(settings.common, name=f"fleet-bridge-{consumer}")
    producer = KafkaProducer(settings.broker_list(), client_id=f"feqa-bridge-{consumer}",
                             timeout_s=settings.send_timeout_s)  # fmt: skip
    try:
        await producer.start()
        log.info("fleet bridge %s: Redis %s -> Kafka %s topic %s", consumer, settings.common.redis_url,
                 settings.brokers, settings.scores_topic)  # fmt: skip
        await ScoresBridge(bus, producer, settings, consumer).run(stop)
    finally:
        await producer.stop()
        await bus.close()


@cli.command()
def worker() -> None:
    """Run the Faust worker with the fleet agents (patient trends, deterioration flags)."""
    _need_extra()
    import faust

    from fleet.agents import build

    settings = load_settings("worker")
    setup_logging(settings.common.log_level, settings.common.log_format)
    why = unreachable_brokers(settings.broker_list(), timeout_s=min(settings.send_timeout_s, 5.0))
    if why is not None:
        click.echo(f"fleet worker: no Kafka broker answers ({why}); set FEQA_FLEET_BROKERS or start one "
                   "(docker compose --profile fleet up kafka)", err=True)  # fmt: skip
        sys.exit(2)
    fleet = build(settings)
    log.info("fleet worker %s on Kafka %s: %s -> %s, %s", settings.app_id, settings.brokers, settings.scores_topic,
             settings.trends_topic, settings.flags_topic)  # fmt: skip
    faust.Worker(
        fleet.app, loglevel=settings.common.log_level.lower(), redirect_stdouts=False
    ).execute_from_commandline()
