"""Pipeline health for the live views: the newest ``Health`` entry of every service instance from ``feqa:health``,
and the dashboard's own counters published there.

Every ``interval_s`` the board reads the stream's newest entries, keeps the latest per (service, instance), marks an
instance ``stale`` when it has not reported for three intervals, and broadcasts the table to every websocket client.

The dashboard's own entry (service ``dashboard``): counters ``ws_delivered``, ``ws_dropped`` (entries a slow client
lost), ``hub_read``, ``scores_consumed``, ``task_scores_stored``, ``task_scores_duplicate``, ``consumer_errors``;
gauges ``ws_clients``, ``score_streams`` (scores streams being consumed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from common.bus import Bus
from common.errors import BusUnavailable
from common.messages import Health
from common.streams import HEALTH
from dashboard.hub import Hub, message_json

log = logging.getLogger(__name__)


class HealthBoard:
    def __init__(
        self,
        bus: Bus,
        hub: Hub,
        *,
        instance: str,
        interval_s: float = 2.0,
        own: Callable[[], tuple[dict[str, float], dict[str, float]]] | None = None,
        read_count: int = 500,
    ) -> None:
        self.bus = bus
        self.hub = hub
        self.instance = instance
        self.interval_s = interval_s
        self.own = own
        self.read_count = read_count
        self.started_ts = time.time()
        self.latest: dict[tuple[str, str], Health] = {}

    def table(self, now: float | None = None) -> list[dict[str, Any]]:
        """The latest entry per instance, with its age and whether it went quiet."""
        now = time.time() if now is None else now
        rows = []
        for (_service, _instance), h in sorted(self.latest.items()):
            row = message_json(h)
            row["age_s"] = round(max(0.0, now - h.ts), 2)
            row["stale"] = now - h.ts > 3 * self.interval_s
            rows.append(row)
        return rows

    async def refresh(self) -> None:
        for delivery in await self.bus.latest(HEALTH, None, self.read_count):
            h = delivery.message
            key = (h.service, h.instance)
            if key not in self.latest or h.ts >= self.latest[key].ts:
                self.latest[key] = h

    async def publish_own(self) -> None:
        if self.own is None:
            return
        counters, gauges = self.own()
        await self.bus.publish(
            HEALTH,
            Health(
                service="dashboard",
                instance=self.instance,
                ts=time.time(),
                started_ts=self.started_ts,
                counters=counters,
                gauges=gauges,
            ),
        )

    async def run(self) -> None:
        while True:
            try:
                await self.publish_own()
                await self.refresh()
                self.hub.broadcast(json.dumps({"t": "health", "d": self.table()}, default=str))
            except asyncio.CancelledError:
                raise
            except BusUnavailable as exc:
                log.error("health board waiting for Redis: %s", exc)
            except Exception:
                log.exception("health board round failed")
            await asyncio.sleep(self.interval_s)
