"""A ``feqa up`` killed outright (SIGKILL: nothing of it runs to stop its children) leaves nothing running: each
service stops itself once its launcher is gone (common.launcher) and the kernel ends the stack's Redis with it
(infra.redis_server)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.integration.test_stack import _start

pytestmark = [pytest.mark.integration, pytest.mark.beside]


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, dead and not yet reaped by init, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def test_a_killed_launcher_leaves_no_service_or_redis_running(tmp_path: Path) -> None:
    proc, lines = _start(tmp_path)
    pids = {int(pid): line for line in lines for pid in re.findall(r"\(pid (\d+)\)", line)}
    names = " ".join(lines)
    assert "redis" in names and "ingest" in names and "dashboard" in names, lines
    assert len(pids) >= 4, lines  # redis and at least three services
    try:
        assert all(_alive(pid) for pid in pids), lines
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 25  # the services' own clean shutdown, well inside their 15 s grace
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.2)
        left = [line for pid, line in pids.items() if _alive(pid)]
        assert not left, f"still running after their launcher was killed: {left}"
    finally:
        for pid in pids:  # a failing run must not leave them behind either (each is one this test started)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
