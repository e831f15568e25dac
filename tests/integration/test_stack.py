"""``feqa up`` starts a real Redis and the built services, prints URLs, and stops everything on a signal."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from infra.redis_server import free_port
from infra.stack import built_services

pytestmark = [pytest.mark.integration, pytest.mark.beside]

ROOT = Path(__file__).resolve().parents[2]


FEQA = [sys.executable, "-c", "from infra.cli import main; main()"]


MEDIAPIPE = ROOT / "models" / "mediapipe"  # made by infra/setup.sh (feqa tracker fetch-models)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment for feqa commands: no FEQA_* setting from outside, the stack's data under tmp_path, and
    the checkout's landmark models (the commands run in tmp_path, where the relative default finds none)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FEQA_")}
    return {**base, "FEQA_STACK_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT),
            "FEQA_TRACKER_MEDIAPIPE_DIR": str(MEDIAPIPE), **extra}  # fmt: skip


def _started(lines: list[str]) -> list[str]:
    """The services feqa up says it starts."""
    head = next(line for line in lines if line.startswith("starting feqa: redis + "))
    return [name.strip() for name in head.split("+", 1)[1].split(",")]


def _start(tmp_path: Path, ingest_port: int | None = None, **extra: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = _env(tmp_path, FEQA_STACK_INGEST_PORT=str(ingest_port or free_port()),
               FEQA_STACK_DASHBOARD_PORT=str(free_port()), **extra)  # fmt: skip
    proc = subprocess.Popen(
        [*FEQA, "up"],
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


def _up_and_stopped_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    """``feqa up`` in ``tmp_path``: what it starts and says, then ``sig`` stops everything and leaves nothing behind
    (the checks of a first start, with no key yet)."""
    proc, lines = _start(tmp_path)
    try:
        redis_line = next(line for line in lines if line.strip().startswith("redis"))
        url = re.search(r"redis://\S+", redis_line)
        assert url is not None
        assert _port_open(url.group(0))
        live = redis.Redis.from_url(url.group(0))
        assert live.config_get("save") == {"save": ""} and live.config_get("appendonly") == {"appendonly": "no"}
        live.xadd("frames:{probe}", {"b": b"\x00" * 1000})  # video in the live bus ...
        # a memory budget, and nothing is ever evicted to keep it (writes fail instead; the ingest admits less)
        assert live.config_get("maxmemory") == {"maxmemory": str(2 << 30)}
        assert live.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        live.close()
        data = tmp_path / "data"
        key_line = next(line for line in lines if "service key (new)" in line)
        key = (data / "ingest.key").read_text().strip()
        assert key in key_line and len(key) >= 32 and ((data / "ingest.key").stat().st_mode & 0o777) == 0o600
        run = json.loads((data / "stack.json").read_text())
        assert run["redis_url"] == url.group(0) and run["key_file"] == str((data / "ingest.key").resolve())
        assert ((data / "stack.json").stat().st_mode & 0o777) == 0o600 and key not in json.dumps(run)
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
    assert not (data / "stack.json").exists()  # the stack is gone: other commands must not look for it
    started = _started(lines)
    assert "ingest" in started and started == [s.name for s in built_services() if s.name in started]
    for name in started:
        log = data / "logs" / f"{name}.log"
        assert log.stat().st_size > 0, f"{name} wrote nothing to {log}"


def test_up_starts_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    _up_and_stopped_cleanly(tmp_path, signal.SIGINT)


def test_up_stops_cleanly_on_sigterm_and_a_second_start_keeps_the_key_and_commands_find_the_stack(
    tmp_path: Path,
) -> None:
    # the first start, stopped by SIGTERM, is checked as the SIGINT one is (one start fewer than checking it apart)
    _up_and_stopped_cleanly(tmp_path, signal.SIGTERM)
    key = (tmp_path / "data" / "ingest.key").read_text().strip()
    proc, lines = _start(tmp_path)
    try:
        assert not any(key in line for line in lines) and any("service key" in line for line in lines)
        assert (tmp_path / "data" / "ingest.key").read_text().strip() == key  # made once, kept
        # with no setting at all, feqa ingest new-session finds the running stack, its port and its key
        made = subprocess.run([*FEQA, "ingest", "new-session", "--protocol", "pfed5", "--patient-id", "demo-1"],
                              capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=60)  # fmt: skip
        assert made.returncode == 0, made.stderr
        link = re.search(r"http://127\.0\.0\.1:\d+/join/\S+", made.stdout)
        sid = re.search(r"feqa watch (\S+)", made.stdout)
        assert link is not None and sid is not None, made.stdout
        rotated = subprocess.run([*FEQA, "key", "rotate"], capture_output=True, text=True, env=_env(tmp_path),
                                 cwd=tmp_path, timeout=60)  # fmt: skip
        assert rotated.returncode == 0 and "new service key" in rotated.stdout
        new_key = (tmp_path / "data" / "ingest.key").read_text().strip()
        assert new_key != key
        base = link.group(0).split("/join/")[0]
        old = httpx.post(f"{base}/api/sessions", json={"patient_id": "p", "protocol": "pfed5"},
                         headers={"X-Api-Key": key}, timeout=10)  # fmt: skip
        new = httpx.get(f"{base}/api/sessions/{sid.group(1)}", headers={"X-Api-Key": new_key}, timeout=10)
        assert (old.status_code, new.status_code) == (401, 200)  # the running ingest switched without a restart
        watched = subprocess.run([*FEQA, "watch", sid.group(1), "--seconds", "1.5"], capture_output=True, text=True,
                                 env=_env(tmp_path), cwd=tmp_path, timeout=60)  # fmt: skip
        assert watched.returncode == 0 and "created" in watched.stdout and "frames" in watched.stdout, watched
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_a_part_without_its_models_is_a_warning_with_advice_not_a_crash(tmp_path: Path) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    proc, lines = _start(tmp_path, FEQA_TRACKER_MEDIAPIPE_DIR=str(empty))
    try:
        assert "tracker" not in _started(lines) and "ingest" in _started(lines)
        warning = next(line for line in lines if "warning: tracker" in line)
        assert "not started" in warning and "feqa tracker fetch-models" in warning, warning
        assert not any("ERROR" in line for line in lines), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


def test_a_busy_port_stops_feqa_up_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = _env(tmp_path, FEQA_STACK_INGEST_PORT=str(port), FEQA_STACK_DASHBOARD_PORT=str(free_port()))
        done = subprocess.run([*FEQA, "up"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "feqa is up" not in out
    assert f"port {port} (ingest)" in out and "already in use" in out and "FEQA_STACK_INGEST_PORT" in out, out
    assert not (tmp_path / "data" / "stack.json").exists()


def test_the_working_directory_is_git_ignored() -> None:
    found = subprocess.run(["git", "check-ignore", "-q", ".feqa/redis/dump.rdb"], cwd=ROOT, check=False)
    assert found.returncode == 0, ".feqa/ must be in .gitignore"


def test_workers_scale_out_to_several_processes_on_one_redis(tmp_path: Path) -> None:
    """FEQA_STACK_TRACKERS / _SCORERS start that many worker processes; each reports its own health (a consumer of
    its own in the group), logs to its own file, and all stop with the stack."""
    import asyncio

    from common.bus import Bus
    from common.health import latest_health

    proc, lines = _start(tmp_path, FEQA_STACK_TRACKERS="2", FEQA_STACK_SCORERS="2")
    started = _started(lines)
    url = json.loads((tmp_path / "data" / "stack.json").read_text())["redis_url"]

    async def instances() -> dict[str, set[str]]:
        bus = await Bus.connect(url, name="test-scale-out")
        try:
            out: dict[str, set[str]] = {}
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline:
                out = {}
                for service, instance in await latest_health(bus):
                    out.setdefault(service, set()).add(instance)
                want = [w for w in ("tracker", "scorer") if w in started]
                if all(len(out.get(w, ())) >= 2 for w in want):
                    break
                await asyncio.sleep(0.5)
            return out
        finally:
            await bus.close()

    try:
        assert "tracker" in started, lines
        seen = asyncio.run(instances())
        assert len(seen.get("tracker", ())) == 2, seen
        if "scorer" in started:
            assert len(seen.get("scorer", ())) == 2, seen
    finally:
        _sigterm_stops(proc)
    logs = tmp_path / "data" / "logs"
    assert (logs / "tracker.log").stat().st_size > 0 and (logs / "tracker-2.log").stat().st_size > 0


def test_workers_quiet_at_log_level_warning_are_seen_started_by_their_health(tmp_path: Path) -> None:
    """At FEQA_LOG_LEVEL=WARNING the workers write nothing when they start; the stack takes each for started once
    it has published its first health entry, not after its whole start timeout (50 s here: two silent workers would
    keep ``feqa up`` from coming up within the 60 s :func:`_start` waits)."""
    proc, lines = _start(tmp_path, FEQA_LOG_LEVEL="WARNING", FEQA_STACK_START_TIMEOUT_S="50")
    try:
        assert "tracker" in _started(lines), lines
        assert not [line for line in lines if "has not said it started" in line], lines
    finally:
        _sigterm_stops(proc)


def _sigterm_stops(proc: subprocess.Popen[str]) -> None:
    """SIGTERM stops ``feqa up`` with exit status 0 (killed by its PID if it does not stop within 40 s)."""
    try:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
