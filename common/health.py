"""Health entries on ``feqa:health``: every service instance publishes its drop, lag and latency figures every few
seconds, and the dashboard keeps the newest per instance.

A service hands :class:`HealthPublisher` a ``sample`` callable returning ``(counters, gauges)``: counters are
cumulative since the instance started (frames_in, frames_dropped, ...), gauges current values (lag_ms, sessions,
...). The bus's own counters are added to every entry as ``bus_<name>`` (published, refused, dead_lettered,
skipped, reconnects ...), so a stage's Redis trouble is visible next to its own figures. Publishing never stops a
service: a failed publish is logged and tried again on the next tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from common.bus import Bus
from common.errors import BusUnavailable
from common.messages import Health
from common.streams import HEALTH

log = logging.getLogger(__name__)

Sample = Callable[[], tuple[dict[str, float], dict[str, float]]]


class HealthPublisher:
    """Publishes one service instance's Health every ``interval_s``."""

    def __init__(self, bus: Bus, service: str, instance: str, sample: Sample, interval_s: float = 2.0) -> None:
        self.bus = bus
        self.service = service
        self.instance = instance
        self.sample = sample
        self.interval_s = interval_s
        self.started_ts = time.time()
        self.published = 0

    def snapshot(self) -> Health:
        counters, gauges = self.sample()
        counters = {**{f"bus_{k}": float(v) for k, v in self.bus.stats.as_dict().items()}, **counters}
        return Health(service=self.service, instance=self.instance, ts=time.time(), started_ts=self.started_ts,
                      counters={k: float(v) for k, v in counters.items()},
                      gauges={k: float(v) for k, v in gauges.items()})  # fmt: skip

    async def publish(self) -> Health:
        health = self.snapshot()
        await self.bus.publish(HEALTH, health)
        self.published += 1
        return health

    async def run(self) -> None:
        """Publish until cancelled (first entry at once)."""
        while True:
            try:
                await self.publish()
            except BusUnavailable as exc:
                log.error("%s %s: health not published: %s", self.service, self.instance, exc)
            await asyncio.sleep(self.interval_s)


async def latest_health(bus: Bus, *, max_age_s: float = 30.0, scan: int = 500) -> dict[tuple[str, str], Health]:
    """The newest Health of every (service, instance) seen in the last ``max_age_s`` (from the newest ``scan``)."""
    now = time.time()
    out: dict[tuple[str, str], Health] = {}
    for d in await bus.latest(HEALTH, None, scan):
        h = d.message
        if now - h.ts <= max_age_s:
            out[(h.service, h.instance)] = h  # oldest first: later entries replace earlier ones
    return out


def percentiles(values: Sequence[float], qs: Sequence[float] = (0.5, 0.99)) -> list[float]:
    """Nearest-rank percentiles of ``values`` (0.0 each when empty)."""
    if not values:
        return [0.0 for _ in qs]
    ordered = sorted(values)
    return [ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in qs]
