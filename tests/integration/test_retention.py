"""Retention of patient video: however a session ends (completed, hung up, timed out, its ingest killed), its frames
and crops leave Redis at once and never come back, every other key of it expires, and nothing reaches the disk.

Real parts throughout: a Redis started as the embedded stack starts it, the ingest app (in this process, and as a
``python -m ingest`` process that is SIGKILLed), aiortc phantom patients over loopback, and a tracker worker whose
sweeper ends the dead ingest's session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiortc import RTCPeerConnection
from av import VideoFrame

from common.bus import Bus
from common.messages import Consent
from common.session_store import SessionStore
from common.settings import CommonSettings
from common.streams import CROPS, FRAMES, OBS
from infra.redis_server import RedisServer
from phantom.face import Phantom
from phantom.spec import PatientSpec
from phantom.track import PhantomTrack
from tests.conftest import SERVICE_HEADERS, SERVICE_KEY, open_bus
from tests.integration.test_ingest_webrtc import connect_client, ingest_settings, serve, wait_for
from tracker.landmarkers import LandmarkerChoice
from tracker.phantom_landmarker import PhantomLandmarker
from tracker.settings import TrackerSettings
from tracker.worker import TrackerWorker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
SPEC = PatientSpec(seed=5, protocol="pfed5", severity=1.0)
OBS_RETENTION_S = 120
SESSION_RETENTION_S = 600


class VanishingTrack(PhantomTrack):
    """A phantom camera that can stop sending without a goodbye (a phone that lost its network)."""

    def __init__(self, phantom: Phantom) -> None:
        super().__init__(phantom)
        self.vanished = asyncio.Event()

    async def recv(self) -> VideoFrame:
        if self.vanished.is_set():
            await asyncio.Event().wait()
        return await super().recv()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feqa-data") / "redis"


@pytest.fixture(scope="module")
def stack_redis(data_dir: Path) -> Iterator[RedisServer]:
    """A Redis of its own, with a data directory as the embedded stack gives it."""
    server = RedisServer(data_dir=data_dir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def rbus(stack_redis: RedisServer) -> AsyncIterator[Bus]:
    async for b in open_bus(stack_redis.url, "retention-test"):
        yield b


def _common(url: str) -> CommonSettings:
    return CommonSettings(redis_url=url, obs_retention_s=OBS_RETENTION_S, session_retention_s=SESSION_RETENTION_S)


@contextlib.asynccontextmanager
async def tracker(url: str) -> AsyncIterator[TrackerWorker]:
    settings = TrackerSettings(common=_common(url), landmarker="phantom", block_ms=10, lease_ttl_ms=1000,
                               sweep_every_s=0.3, intra_op_threads=1)  # fmt: skip
    async for bus in open_bus(url, "retention-tracker"):
        worker = TrackerWorker(settings, bus, LandmarkerChoice("phantom", None, PhantomLandmarker()))
        stop = asyncio.Event()
        task = asyncio.ensure_future(worker.run(stop))
        try:
            yield worker
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)


async def _create(http: httpx.AsyncClient) -> dict[str, Any]:
    body = {"patient_id": "p-ret", "protocol": "pfed5", "phantom": SPEC.to_json()}
    created = (await http.post("/api/sessions", json=body)).json()
    joined = await http.post(f"/api/join/{created['token']}", json={"consent": True})
    assert joined.status_code == 200, joined.text
    return {**created, **joined.json()}


async def _streaming(rbus: Bus, sid: str) -> None:
    """Frames and crops of the session are in Redis (so their deletion below is a real event)."""

    async def media() -> bool:
        return await rbus.length(FRAMES, sid) >= 3 and await rbus.length(CROPS, sid) >= 3

    await wait_for(media, 30, "frames and crops")


async def _assert_purged(raw: aioredis.Redis, rbus: Bus, sid: str, reason: str) -> None:
    info = await SessionStore(rbus).require(sid)
    assert (info.state, info.end_reason) == ("ended", reason)
    assert await raw.exists(FRAMES.key(sid), CROPS.key(sid)) == 0  # gone at once ...
    await asyncio.sleep(1.0)
    assert await raw.exists(FRAMES.key(sid), CROPS.key(sid)) == 0  # ... and still gone a second later
    keys = sorted(k.decode() for k in await raw.keys(f"*{{{sid}}}*"))
    assert keys, "the session left nothing at all: its hash and observations should follow their retention"
    for key in keys:
        ttl = await raw.ttl(key)
        limit = OBS_RETENTION_S if key == OBS.key(sid) else SESSION_RETENTION_S
        assert 0 < ttl <= limit, (key, ttl)  # every key of the ended session expires
    assert OBS.key(sid) in keys and info.obs_purge_ts > info.ended_ts


async def test_every_way_a_session_ends_purges_its_video(
    stack_redis: RedisServer, rbus: Bus, data_dir: Path, tmp_path: Path
) -> None:
    raw = aioredis.Redis.from_url(stack_redis.url)
    phantom = Phantom(SPEC, 320, 240, 15.0)
    port = _free_port()
    settings = ingest_settings(stack_redis.url, port, common=_common(stack_redis.url), idle_timeout_s=1.5,
                               allow_phantom=True)  # fmt: skip
    async with tracker(stack_redis.url) as worker:
        async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10, headers=SERVICE_HEADERS) as http:
            # completed: the page's last call
            s = await _create(http)
            pc = await connect_client(http, s["sid"], s["key"], PhantomTrack(phantom))
            await _streaming(rbus, s["sid"])
            end = await http.post(f"/api/sessions/{s['sid']}/end", json={"reason": "completed"},
                                  headers={"X-Session-Key": s["key"]})  # fmt: skip
            assert end.json() == {"state": "ended", "reason": "completed"}
            await pc.close()
            await _assert_purged(raw, rbus, s["sid"], "completed")

            # hung up: the patient's side closes the connection
            s = await _create(http)
            pc = await connect_client(http, s["sid"], s["key"], PhantomTrack(phantom))
            await _streaming(rbus, s["sid"])
            await pc.close()
            await wait_for(lambda sid=s["sid"]: _ended(rbus, sid), 15, "hangup end")
            await _assert_purged(raw, rbus, s["sid"], "hangup")

            # timed out: the media stops without a goodbye
            s = await _create(http)
            track = VanishingTrack(phantom)
            pc = await connect_client(http, s["sid"], s["key"], track)
            await _streaming(rbus, s["sid"])
            track.vanished.set()
            await wait_for(lambda sid=s["sid"]: _ended(rbus, sid), 15, "idle end")
            await _assert_purged(raw, rbus, s["sid"], "idle_timeout")
            await pc.close()

        # ingest lost: the ingest process serving the session is killed; the tracker's sweeper ends it
        sid, pc, proc = await _session_on_a_doomed_ingest(rbus, stack_redis.url, phantom, tmp_path)
        try:
            await _streaming(rbus, sid)
            proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await wait_for(lambda: _ended(rbus, sid), 15, "the sweeper to end the session")
            assert time.monotonic() - killed < 1.0 + 0.3 + 2.0  # lease ttl + sweep interval + slack
            await _assert_purged(raw, rbus, sid, "ingest_lost")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            await pc.close()
        assert worker.stats.swept >= 1 and worker.stats.frames > 0
    save = await raw.config_get("save")
    aof = await raw.config_get("appendonly")
    assert save[b"save" if b"save" in save else "save"] in (b"", "")
    assert aof[b"appendonly" if b"appendonly" in aof else "appendonly"] in (b"no", "no")
    await raw.aclose()
    stack_redis.stop()  # a shutdown with no save points writes nothing either
    left = sorted(p.name for p in data_dir.iterdir())
    assert left == ["redis.log"], left  # no dump.rdb, no appendonly file: no frame ever reached the disk
    assert (data_dir.stat().st_mode & 0o777) == 0o700


async def _ended(rbus: Bus, sid: str) -> bool:
    info = await SessionStore(rbus).get(sid)
    return info is not None and info.ended


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _session_on_a_doomed_ingest(
    rbus: Bus, url: str, phantom: Phantom, tmp_path: Path
) -> tuple[str, RTCPeerConnection, subprocess.Popen[bytes]]:
    port = _free_port()
    env = dict(os.environ, FEQA_REDIS_URL=url, FEQA_OBS_RETENTION_S=str(OBS_RETENTION_S),
               FEQA_SESSION_RETENTION_S=str(SESSION_RETENTION_S), FEQA_INGEST_HOST="127.0.0.1",
               FEQA_INGEST_PORT=str(port), FEQA_INGEST_ICE_HOST_ADDRESSES='["127.0.0.1"]',
               FEQA_INGEST_LEASE_TTL_MS="1000", FEQA_INGEST_API_KEY=SERVICE_KEY,
               FEQA_INGEST_ALLOW_PHANTOM="true")  # fmt: skip
    log = (tmp_path / "ingest.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "ingest"], cwd=ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=10, headers=SERVICE_HEADERS) as http:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/healthz")).status_code == 200:
                    break
            assert proc.poll() is None, (tmp_path / "ingest.log").read_text()
            await asyncio.sleep(0.05)
        s = await _create(http)
        pc = await connect_client(http, s["sid"], s["key"], PhantomTrack(phantom))
    info = await SessionStore(rbus).require(s["sid"])
    assert info.consent == Consent(live_scoring=True)
    return str(s["sid"]), pc, proc
