"""``feqa health SERVICE`` (the containers' health checks) against real services: each check passes on a healthy
service and fails, saying why, when the service or what it needs is gone."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from common.bus import Bus
from common.messages import Health
from common.settings import CommonSettings
from common.streams import HEALTH
from fleet.agents import build
from fleet.settings import FleetSettings
from infra.health import check
from infra.redis_server import RedisServer
from ingest.app import create_app as ingest_app
from ingest.settings import IngestSettings
from tests.dashboard_kit import free_port, make_accounts, running, serve, settings_for, sqlite_url

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]
FEQA = str(Path(sys.executable).with_name("feqa"))  # the console script, as a container runs it


# Some checks are tested against a Redis that goes away: each test has a Redis of its own (tests/conftest.py
# private_redis, private_bus).


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, private_redis: RedisServer) -> pytest.MonkeyPatch:
    monkeypatch.setenv("FEQA_REDIS_URL", private_redis.url)
    return monkeypatch


async def test_dashboard_healthz_and_its_check(
    env: pytest.MonkeyPatch, private_redis: RedisServer, tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path)
    make_accounts(url)
    port = free_port()
    env.setenv("FEQA_DASHBOARD_PORT", str(port))
    async with running(settings_for(private_redis.url, url), background=False) as (app, _), serve(app, port) as base:
        res = await httpx.AsyncClient().get(base + "/healthz")
        assert res.status_code == 200 and res.json() == {"ok": True, "database": "ok", "redis": "ok"}
        assert await check("dashboard") == []
        private_redis.stop()  # Redis gone: the dashboard says so within its 2 s, and the check fails with it
        t0 = time.monotonic()
        res = await httpx.AsyncClient(timeout=10).get(base + "/healthz")
        assert res.status_code == 503 and res.json()["redis"].startswith("failing") and res.json()["database"] == "ok"
        assert time.monotonic() - t0 < 5
        problems = await check("dashboard", timeout_s=5)
        assert len(problems) == 1 and "answered 503" in problems[0] and "redis" in problems[0]
    assert "no answer" in (await check("dashboard"))[0]  # stopped


async def test_ingest_check(env: pytest.MonkeyPatch, private_redis: RedisServer) -> None:
    port = free_port()
    env.setenv("FEQA_INGEST_PORT", str(port))
    key = SecretStr("health-check-test-key-0123")  # the probe itself needs no key: /healthz is public
    app = ingest_app(IngestSettings(common=CommonSettings(redis_url=private_redis.url), port=port, api_key=key))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            assert not task.done(), task
            await asyncio.sleep(0.02)
        assert await check("ingest") == []
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
    problems = await check("ingest")
    assert problems == [f"no answer from http://127.0.0.1:{port}/healthz (ConnectError)"]
    env.setenv("FEQA_INGEST_PORT", "not-a-port")
    assert "settings do not load" in (await check("ingest"))[0]


async def test_tracker_check(
    env: pytest.MonkeyPatch, private_redis: RedisServer, private_bus: Bus, mediapipe_dir: Path, tmp_path: Path
) -> None:
    env.setenv("FEQA_TRACKER_MEDIAPIPE_DIR", str(mediapipe_dir))
    assert (await check("tracker"))[0].startswith("no Health entry of tracker from this host")
    await _health(private_bus, "tracker", f"{socket.gethostname()}-42", 1)
    assert await check("tracker") == []
    env.setenv("FEQA_TRACKER_MEDIAPIPE_DIR", str(tmp_path))
    assert await check("tracker") == [
        f"MediaPipe face models missing or stale in {tmp_path}: run feqa tracker fetch-models"
    ]
    env.setenv("FEQA_TRACKER_LANDMARKER", "insightface")
    env.setenv("FEQA_TRACKER_MODEL_DIR", str(tmp_path))
    assert [p.split(" ")[2] for p in await check("tracker")] == [str(tmp_path / "det_10g.onnx"),
                                                                 str(tmp_path / "2d106det.onnx")]  # fmt: skip
    env.setenv("FEQA_TRACKER_LANDMARKER", "mediapipe")
    env.setenv("FEQA_TRACKER_MEDIAPIPE_DIR", str(mediapipe_dir))
    private_redis.stop()
    problems = await check("tracker", timeout_s=1.0)
    assert len(problems) == 1 and problems[0].startswith("Redis does not answer")


async def _health(bus: Bus, service: str, instance: str, age_s: float) -> None:
    now = time.time()
    await bus.publish(HEALTH, Health(service=service, instance=instance, ts=now - age_s, started_ts=now - 60))


async def test_fleet_bridge_check_needs_kafka_and_a_fresh_health_entry(
    env: pytest.MonkeyPatch, private_bus: Bus
) -> None:
    broker = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)  # a port that accepts connections
    port = broker.sockets[0].getsockname()[1]
    host = socket.gethostname()
    try:
        env.setenv("FEQA_FLEET_BROKERS", f"127.0.0.1:{free_port()},127.0.0.1:{port}")  # one of two brokers is enough
        assert (await check("fleet-bridge"))[0].startswith(f"no Health entry of fleet-bridge from this host ({host})")
        await _health(private_bus, "fleet-bridge", "elsewhere-1", 0)  # another host's bridge does not count
        assert (await check("fleet-bridge"))[0].startswith("no Health entry")
        await _health(private_bus, "fleet-bridge", f"{host}-77", 100)
        assert "last reported 100 s ago" in (await check("fleet-bridge", max_age_s=30))[0]
        await _health(private_bus, "fleet-bridge", f"{host}-78", 1)
        assert await check("fleet-bridge") == []
        dead = free_port()
        env.setenv("FEQA_FLEET_BROKERS", f"127.0.0.1:{dead}")
        assert await check("fleet-bridge") == [
            f"Kafka broker 127.0.0.1:{dead} refuses connections (ConnectionRefusedError)"
        ]
    finally:
        broker.close()


async def test_scorer_check(env: pytest.MonkeyPatch, private_bus: Bus) -> None:
    import importlib.util

    if importlib.util.find_spec("scorer.settings") is None:
        assert await check("scorer") == ["scorer.settings is not built into this image"]
        return
    assert (await check("scorer"))[0].startswith("no Health entry of scorer")
    await _health(private_bus, "scorer", f"{socket.gethostname()}-5", 1)
    assert await check("scorer") == []


async def feqa_health(service: str) -> tuple[int, str, str]:
    """``feqa health SERVICE`` as a container runs it (without blocking this loop, which serves the tested app)."""
    proc = await asyncio.create_subprocess_exec(FEQA, "health", service, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode().strip(), err.decode().strip()


async def test_fleet_worker_check_asks_the_faust_web_server(env: pytest.MonkeyPatch) -> None:
    port = free_port()
    env.setenv("FEQA_FLEET_WEB_PORT", str(port))
    fleet = build(FleetSettings())
    assert fleet.app.conf.web_port == port
    await fleet.app.web.start()
    try:
        assert await check("fleet-worker") == []
        assert await feqa_health("fleet-worker") == (0, "fleet-worker healthy", "")
    finally:
        await fleet.app.web.stop()
    problems = await check("fleet-worker")
    assert problems == [f"no answer from http://127.0.0.1:{port}/ (ConnectError)"]
    assert await feqa_health("fleet-worker") == (1, "", "fleet-worker unhealthy: " + problems[0])


async def test_trainer_check(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("FEQA_MODELS_DIR", str(tmp_path / "models"))
    assert await check("trainer") == []
    (tmp_path / "file").write_text("x")
    env.setenv("FEQA_MODELS_DIR", str(tmp_path / "file" / "models"))
    assert "is not writable" in (await check("trainer"))[0]
