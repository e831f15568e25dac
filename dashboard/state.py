"""What the dashboard's handlers share, built once by the app's lifespan (never module globals)."""

from __future__ import annotations

import dataclasses

from common.bus import Bus
from dashboard.consumer import ScoreConsumer
from dashboard.db import Database
from dashboard.health import HealthBoard
from dashboard.hub import Hub
from dashboard.ingest_client import IngestClient
from dashboard.settings import DashboardSettings


@dataclasses.dataclass
class DashboardState:
    settings: DashboardSettings
    db: Database
    bus: Bus
    hub: Hub
    health: HealthBoard
    consumer: ScoreConsumer
    ingest: IngestClient

    def own_health(self) -> tuple[dict[str, float], dict[str, float]]:
        """The dashboard's counters and gauges for its ``feqa:health`` entry."""
        hub, con = self.hub.stats, self.consumer.stats
        dropped = hub.dropped + sum(c.dropped for c in self.hub.clients)
        counters = {
            "ws_delivered": float(hub.delivered),
            "ws_dropped": float(dropped),
            "hub_read": float(hub.read),
            "scores_consumed": float(con.entries),
            "task_scores_stored": float(con.task_scores),
            "task_scores_duplicate": float(con.duplicates),
            "consumer_errors": float(con.errors),
        }
        gauges = {"ws_clients": float(hub.clients), "score_streams": float(con.streams)}
        return counters, gauges
