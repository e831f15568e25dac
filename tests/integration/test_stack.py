"""``feqa up`` starts a real Redis and the built services, prints URLs, and stops everything on a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from infra.redis_server import free_port
from infra.stack import built_services

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], list[str]]:
    env = dict(
        os.environ,
        FEQA_STACK_DATA_DIR=str(tmp_path / "data"),
        FEQA_STACK_INGEST_PORT=str(free_port()),
        FEQA_STACK_DASHBOARD_PORT=str(free_port()),
        PYTHONPATH=str(ROOT),
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", "from infra.cli import main; main()", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            break
        lines.append(line.rstrip())
        if "feqa is up" in line:
            return proc, lines
    proc.kill()
    raise AssertionError("feqa up did not come up:\n" + "\n".join(lines))


def _port_open(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.ConnectionError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_up_starts_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    proc, lines = _start(tmp_path)
    try:
        redis_line = next(line for line in lines if line.strip().startswith("redis"))
        url = re.search(r"redis://\S+", redis_line)
        assert url is not None
        assert _port_open(url.group(0))
        live = redis.Redis.from_url(url.group(0))
        assert live.config_get("save") == {"save": ""} and live.config_get("appendonly") == {"appendonly": "no"}
        live.xadd("frames:{probe}", {"b": b"\x00" * 1000})  # video in the live bus ...
        live.close()
        for spec in built_services():
            if spec.port_of is not None:
                assert any(spec.label in line and "http://127.0.0.1:" in line for line in lines), spec.name
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "stopped" in out
    assert not _port_open(url.group(0))
    data = tmp_path / "data"
    assert (data.stat().st_mode & 0o777) == 0o700 and ((data / "redis").stat().st_mode & 0o777) == 0o700
    on_disk = sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())
    assert not [p for p in on_disk if p.endswith((".rdb", ".aof")) or "appendonly" in p], on_disk  # ... never on disk


def test_the_working_directory_is_git_ignored() -> None:
    found = subprocess.run(["git", "check-ignore", "-q", ".feqa/redis/dump.rdb"], cwd=ROOT, check=False)
    assert found.returncode == 0, ".feqa/ must be in .gitignore"
