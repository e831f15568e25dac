"""Health entries on feqa:health: the publisher, the reader's newest-per-instance view, surviving a Redis outage."""

from __future__ import annotations

import asyncio
import time

import pytest

from common.bus import Backoff, Bus, Timeouts
from common.health import HealthPublisher, latest_health, percentiles
from common.messages import Health
from common.streams import HEALTH
from common.tasks import stop_tasks
from infra.redis_server import RedisServer
from tests.faults import FaultProxy

pytestmark = pytest.mark.integration


async def test_newest_entry_per_instance_with_the_bus_counters(bus: Bus, sid: str) -> None:
    frames = [0]

    def sample() -> tuple[dict[str, float], dict[str, float]]:
        return {"frames_in": frames[0]}, {"lag_ms": 12.5}

    a = HealthPublisher(bus, "scorer", f"a-{sid}", sample)
    b = HealthPublisher(bus, "scorer", f"b-{sid}", sample)
    await a.publish()
    frames[0] = 7
    await b.publish()
    await a.publish()
    old = Health(service="scorer", instance=f"gone-{sid}", ts=time.time() - 600, started_ts=0.0)
    await bus.publish(HEALTH, old)
    seen = await latest_health(bus)
    assert seen[("scorer", f"a-{sid}")].counters["frames_in"] == 7  # the newest of a's two entries
    assert ("scorer", f"gone-{sid}") not in seen  # too old to be a live instance
    entry = seen[("scorer", f"b-{sid}")]
    assert (
        entry.gauges == {"lag_ms": 12.5} and entry.counters["bus_published"] >= 1
    )  # entries published before this one
    assert {"bus_refused", "bus_dead_lettered", "bus_skipped", "bus_reconnects"} <= set(entry.counters)
    assert percentiles([5.0, 1.0, 3.0, 2.0, 4.0]) == [3.0, 5.0] and percentiles([]) == [0.0, 0.0]


async def test_the_publisher_outlives_a_redis_outage(redis_server: RedisServer, bus: Bus, sid: str) -> None:
    proxy = await FaultProxy(redis_server.port).start()
    flaky = await Bus.connect(proxy.url, backoff=Backoff(first_s=0.02, cap_s=0.05, budget_s=0.3),
                              timeouts=Timeouts(connect_s=0.2, read_s=0.2))  # fmt: skip
    publisher = HealthPublisher(flaky, "ingest", f"i-{sid}", lambda: ({}, {}), interval_s=0.1)
    task = asyncio.ensure_future(publisher.run())
    try:
        await asyncio.sleep(0.35)
        before = publisher.published
        assert before >= 2
        proxy.mode = "blackhole"
        await asyncio.sleep(1.0)
        assert publisher.published == before and not task.done()  # failing, logged, still running
        proxy.mode = "pass"
        await asyncio.sleep(1.0)
        assert publisher.published > before
        assert ("ingest", f"i-{sid}") in await latest_health(bus)
    finally:
        await stop_tasks([task], what="health publisher")
        await flaky.close()
        await proxy.stop()
