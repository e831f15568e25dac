"""A session's life on a real Redis leaves only keys in its own hash slot: created, joined, tracked (the tracker
worker with the phantom oracle), owned by a scorer lease, bridged by the fleet group, then ended. Every key that
names the session hashes to the session's slot; every other key is a global ``feqa:`` key of the key table."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import redis
from redis.crc import key_slot

from common.bus import Bus
from common.framecodec import encode_frame
from common.messages import Frame
from common.ownership import SessionOwnership
from common.session_store import SessionStore
from common.streams import ALL_KEYS, ALL_STREAMS, FLEET_SCORES, FRAMES, OBS, SCORES
from infra.redis_server import RedisServer
from ingest.tokens import JoinTokens, PageKeys
from phantom.face import Phantom
from phantom.spec import PatientSpec
from tests.conftest import live_session, open_bus
from tests.fleet_kit import task_score
from tracker.landmarkers import LandmarkerChoice
from tracker.phantom_landmarker import PhantomLandmarker
from tracker.settings import TrackerSettings
from tracker.worker import TrackerWorker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


def session_keys(raw: redis.Redis, sid: str) -> set[str]:
    return {k.decode() for k in raw.scan_iter(match=f"*{sid}*", count=1000)}


async def test_a_sessions_keys_share_one_slot(own_redis: RedisServer) -> None:
    raw = redis.Redis.from_url(own_redis.url)
    spec = PatientSpec(seed=3, protocol="pfed5", severity=1.0)
    async for bus in open_bus(own_redis.url, "cluster-test"):
        await run_a_session(bus, raw, spec)
    raw.close()


async def run_a_session(bus: Bus, raw: redis.Redis, spec: PatientSpec) -> None:
    sid = "cl" + str(int(time.time() * 1000))
    await live_session(bus, sid, phantom=spec.to_json(), fps=15.0)
    token, _ = await JoinTokens(bus, 60).issue(sid)
    await PageKeys(bus, 60).mint(sid)
    settings = TrackerSettings(landmarker="phantom", block_ms=10, lease_ttl_ms=2000)
    worker = TrackerWorker(settings, bus, LandmarkerChoice("phantom", None, PhantomLandmarker()))
    ph = Phantom(spec, 160, 120, 15.0)
    for i in range(12):
        rgb = np.ascontiguousarray(ph.render(i))
        await bus.publish(FRAMES, Frame(sid=sid, seq=i, capture_ts=time.time(), width=160, height=120,
                                        encoding="rgb24", data=encode_frame(rgb, "rgb24")))  # fmt: skip
    deadline = time.monotonic() + 30
    while await bus.length(OBS, sid) < 12:
        assert time.monotonic() < deadline, "the tracker did not observe the frames"
        await worker.tick()
    scorer = SessionOwnership(bus, "scorer", "scorer-1", 2000)
    scorer.started(sid)
    assert (await scorer.maintain()).gained == (sid,)
    await bus.publish(SCORES, task_score(sid, 1.0))
    await bus.consume(FLEET_SCORES, [sid], "bridge-1", block_ms=None)

    slot = key_slot(sid.encode())
    during = session_keys(raw, sid)
    names = {k.split(":")[0] for k in during}
    assert {"session", "events", "frames", "obs", "crops", "windows", "scores", "coach", "tracker-lease",
            "scorer-lease", "ingest-lease", "pagekey"} <= names, names  # fmt: skip
    assert all(key_slot(k.encode()) == slot for k in during), sorted(during)
    # keys that do not name the session: the global ones of the key table, and the join link (hashed token)
    templates = [s.template for s in (*ALL_STREAMS, *ALL_KEYS) if not s.per_session]
    for key in {k.decode() for k in raw.scan_iter(count=1000)} - during:
        assert any(key == t or (t.endswith(">") and key.startswith(t.split("<")[0])) for t in templates), key
    assert token not in str(sorted(raw.keys()))  # the join link is stored by digest only

    await SessionStore(bus).end(sid, "completed")
    after = session_keys(raw, sid)
    assert all(key_slot(k.encode()) == slot for k in after)
    assert not {k for k in after if k.startswith(("frames:", "crops:", "pagekey:"))}  # deleted at the end
