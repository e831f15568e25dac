"""Hypothesis throws generated SDP offers, session ids, JSON bodies and uploads at a real ingest server on
loopback (tests.fuzz_kit): no 5xx, no hung request, and afterwards the same server runs a normal session (a real
aiortc peer streams frames into Redis and hangs up) and holds no leftover peer."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest

from common.bus import Bus
from common.streams import FRAMES
from infra.redis_server import RedisServer, free_port
from tests.conftest import SERVICE_HEADERS, TEST_BACKOFF
from tests.fuzz_kit import Fuzzer, client, fuzz, fuzz_settings, ingest_in_thread, offer_template
from tests.integration.test_ingest_webrtc import PatternTrack, connect_client, create_and_join

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("FEQA_FUZZ_EXAMPLES", "600"))


def test_generated_bad_input_never_breaks_the_ingest(redis_server: RedisServer) -> None:
    settings = fuzz_settings(redis_server.url, free_port())
    template = offer_template()
    with ingest_in_thread(settings) as (url, app), client(url) as http:
        fuzzer = Fuzzer(http, template)
        started = time.monotonic()
        fuzz(fuzzer, EXAMPLES)
        took = time.monotonic() - started
        assert fuzzer.count >= EXAMPLES
        four = sum(n for code, n in fuzzer.statuses.items() if 400 <= code < 500)
        assert four > EXAMPLES // 2, fuzzer.statuses  # most cases are refused, each with a 4xx
        print(f"{fuzzer.count} fuzz cases in {took:.1f} s: {sorted(fuzzer.statuses.items())}")
        asyncio.run(_normal_session(url, redis_server.url))
        registry = app.state.ingest.registry
        deadline = time.monotonic() + settings.connect_timeout_s + 10
        while len(registry) and time.monotonic() < deadline:  # offers that were accepted time out unconnected
            time.sleep(0.1)
        assert len(registry) == 0


async def _normal_session(url: str, redis_url: str) -> None:
    bus = await Bus.connect(redis_url, name="after-fuzz", backoff=TEST_BACKOFF)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10, headers=SERVICE_HEADERS) as http:
            s = await create_and_join(http)
            pc = await connect_client(http, s["sid"], s["key"], PatternTrack(fps=15))
            deadline = time.monotonic() + 15
            while await bus.length(FRAMES, s["sid"]) < 5:
                assert time.monotonic() < deadline, "no frames after the fuzz run"
                await asyncio.sleep(0.05)
            ended = await http.post(f"/api/sessions/{s['sid']}/end", json={"reason": "completed"},
                                    headers={"X-Session-Key": s["key"]})  # fmt: skip
            assert ended.json() == {"state": "ended", "reason": "completed"}
            await pc.close()
    finally:
        await bus.close()
