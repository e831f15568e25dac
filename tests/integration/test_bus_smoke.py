from __future__ import annotations

import pytest

from common.backlog import pending_count
from common.bus import Bus
from common.messages import Event
from common.streams import StreamSpec

pytestmark = pytest.mark.integration
SMOKE = StreamSpec("smoke:{sid}", Event, maxlen=100, group="g")


async def test_publish_consume_ack(bus: Bus, sid: str) -> None:
    await bus.publish(SMOKE, Event(sid=sid, type="marker", ts=1.0, text="hello"))
    got = await bus.consume(SMOKE, [sid], "c1", block_ms=100)
    assert [d.message.text for d in got] == ["hello"]
    assert await bus.ack(got) == 1
    assert await pending_count(bus, SMOKE, sid) == 0
