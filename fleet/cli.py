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

from common.bus import Bus
from common.errors import FeqaError
from common.logs import setup_logging
from fleet.settings import FleetSettings

log = logging.getLogger(__name__)


def _need_extra() -> None:
    if importlib.util.find_spec("faust") is None or importlib.util.find_spec("aiokafka") is None:
        click.echo(
            "fleet: faust-streaming is not installed; install the fleet extra: pip install 'feqa[fleet]'", err=True
        )
        sys.exit(2)


@click.group(name="fleet")
def cli() -> None:
    """Fleet analytics on Kafka: the scores bridge and the Faust agents (baseline band, trend, flag)."""


@cli.command()
def bridge() -> None:
    """Send every session's task scores from Redis to the Kafka scores topic (at least once)."""
    _need_extra()
    settings = FleetSettings()
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

    settings = FleetSettings()
    setup_logging(settings.common.log_level, settings.common.log_format)
    fleet = build(settings)
    log.info("fleet worker %s on Kafka %s: %s -> %s, %s", settings.app_id, settings.brokers, settings.scores_topic,
             settings.trends_topic, settings.flags_topic)  # fmt: skip
    faust.Worker(
        fleet.app, loglevel=settings.common.log_level.lower(), redirect_stdouts=False
    ).execute_from_commandline()
