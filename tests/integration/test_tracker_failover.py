"""Two tracker processes share sessions; one is killed (SIGKILL) mid-session and the other takes its sessions
over: every frame of every session still gets exactly one observation."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from common.backlog import pending_count
from common.bus import Bus
from common.framecodec import encode_frame
from common.messages import Frame
from common.streams import FRAMES, OBS, lease_spec
from infra.redis_server import RedisServer
from phantom.face import Phantom
from phantom.spec import PatientSpec
from tests.conftest import live_session, open_bus
from tracker.testing.onnx_models import write_model_pack

LEASE = lease_spec("tracker")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]
FPS = 15.0
N_FRAMES = 45


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A Redis of its own: no session announced by other tests competes for these workers."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def fbus(own_redis: RedisServer) -> AsyncIterator[Bus]:
    async for b in open_bus(own_redis.url):
        yield b


def _spawn(name: str, url: str, pack: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update({
        "FEQA_REDIS_URL": url,
        "FEQA_TRACKER_CONSUMER": name,
        "FEQA_TRACKER_MODEL_DIR": str(pack),
        "FEQA_TRACKER_DET_SIZE": "160",
        "FEQA_TRACKER_LEASE_TTL_MS": "900",
        "FEQA_TRACKER_RECLAIM_IDLE_MS": "300",
        "FEQA_TRACKER_STALE_MS": "60000",
        "FEQA_TRACKER_INTRA_OP_THREADS": "1",
    })  # fmt: skip
    log = (Path(env["FEQA_TRACKER_MODEL_DIR"]).parent / f"{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "tracker"], cwd=ROOT, env=env, stderr=log, stdout=log)


async def _owners(raw: aioredis.Redis, sids: list[str]) -> dict[str, str | None]:
    values = [await raw.get(LEASE.key(s)) for s in sids]
    return {s: (v.decode() if isinstance(v, bytes) else v) or None for s, v in zip(sids, values, strict=True)}


async def _wait_for(cond: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_killed_worker_sessions_are_taken_over(fbus: Bus, own_redis: RedisServer, tmp_path: Path) -> None:
    pack = write_model_pack(tmp_path / "pack")
    spec = PatientSpec(seed=9, protocol="pfed5", severity=2.0)
    ph = Phantom(spec, 320, 240, FPS)
    frames = [encode_frame(ph.render(i), "rgb24") for i in range(N_FRAMES)]
    sids = [f"fo{i}" for i in range(4)]
    raw = aioredis.Redis.from_url(own_redis.url)  # observes lease owners only; streams go through the bus

    async def announce(sid: str) -> None:
        await live_session(fbus, sid, phantom=spec.to_json(), fps=FPS)

    workers = {"w1": _spawn("w1", own_redis.url, pack)}
    try:
        for sid in sids[:2]:
            await announce(sid)

        async def w1_owns_two() -> bool:
            return list((await _owners(raw, sids[:2])).values()) == ["w1", "w1"]

        await _wait_for(w1_owns_two, 30, "w1 to take the first sessions")
        workers["w2"] = _spawn("w2", own_redis.url, pack)

        async def w2_up() -> bool:
            return any(c.get("name") == "tracker-w2" for c in await raw.client_list())

        await _wait_for(w2_up, 30, "w2 to connect")
        for sid in sids[2:]:
            await announce(sid)

        async def all_owned() -> bool:
            return None not in (await _owners(raw, sids)).values()

        await _wait_for(all_owned, 10, "all sessions to be owned")
        before = await _owners(raw, sids)
        assert set(before.values()) == {"w1", "w2"}, before  # the sessions are shared

        for i in range(N_FRAMES):
            for sid in sids:
                msg = Frame(sid=sid, seq=i, capture_ts=time.time(), width=320, height=240, encoding="rgb24",
                            data=frames[i])  # fmt: skip
                await fbus.publish(FRAMES, msg)
            if i == N_FRAMES // 3:
                workers["w1"].send_signal(signal.SIGKILL)  # no lease release, frames left pending
            await asyncio.sleep(1 / FPS)

        async def every_frame_observed() -> bool:
            for sid in sids:
                seqs = {d.message.seq for d in await fbus.range(OBS, sid)}
                if seqs != set(range(N_FRAMES)):
                    return False
            return True

        await _wait_for(every_frame_observed, 30, "every frame to be observed")
        assert set((await _owners(raw, sids)).values()) == {"w2"}
        for sid in sids:
            assert await pending_count(fbus, FRAMES, sid) == 0
            obs = [d.message for d in await fbus.range(OBS, sid)]
            assert sorted(o.seq for o in obs) == list(range(N_FRAMES))  # none twice: reclaimed ones de-duplicated
            assert all(o.face for o in obs), {o.reason for o in obs}
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.wait()
        await raw.aclose()
