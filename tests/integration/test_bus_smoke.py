from __future__ import annotations

import pytest

from common.bus import Bus
from common.messages import Event
from common.streams import EVENTS

pytestmark = pytest.mark.integration


async def test_publish_consume_ack(bus: Bus, sid: str) -> None:
    await bus.publish(EVENTS, Event(sid=sid, type="marker", ts=1.0, text="hello"))
    got = await bus.consume([EVENTS.key(sid)], "g", "c1", Event, block_ms=100)
    assert [d.message.text for d in got] == ["hello"]
    assert await bus.ack(EVENTS.key(sid), "g", [d.id for d in got]) == 1
    assert await bus.pending_count(EVENTS.key(sid), "g") == 0
