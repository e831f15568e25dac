"""The embedded stack: a real Redis plus every service that exists, as child processes of one launcher.

Its working directory (``.feqa/`` by default, git-ignored) is created 0700; its Redis keeps no snapshot on disk
(infra.redis_server), so no patient frame is ever written there.

Each service runs as ``python -m <service>`` with ``FEQA_REDIS_URL`` pointing at the launcher's Redis. The
launcher prints the URLs, watches the children, and on Ctrl-C / SIGTERM (or when a child dies) stops them all by
their PIDs: SIGTERM, then SIGKILL after a grace period, and Redis last.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common.errors import ConfigError
from infra.redis_server import RedisServer
from infra.settings import StackSettings

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """A service the launcher knows how to start; ``port_of`` gives its HTTP port (None: a worker)."""

    name: str
    port_of: Callable[[StackSettings], int] | None = None
    page: str = "/"
    label: str = ""


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("ingest", lambda s: s.ingest_port, "/", "patient page"),
    ServiceSpec("tracker"),
    ServiceSpec("scorer"),
    ServiceSpec("dashboard", lambda s: s.dashboard_port, "/", "clinician dashboard"),
)


def built_services() -> list[ServiceSpec]:
    """The services whose package has a ``__main__`` (only what is built gets started)."""
    return [s for s in SERVICES if importlib.util.find_spec(s.name) and importlib.util.find_spec(f"{s.name}.__main__")]


@dataclasses.dataclass
class Child:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes]
    url: str | None


class Stack:
    """Start Redis and the built services; :meth:`wait` blocks until a stop signal or a child exits."""

    def __init__(self, settings: StackSettings, services: list[ServiceSpec] | None = None) -> None:
        self.settings = settings
        self.services = built_services() if services is None else services
        self.redis: RedisServer | None = None
        self.children: list[Child] = []
        self._stop = threading.Event()
        self.exit_reason = ""

    def start(self) -> None:
        data = self.settings.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        data.chmod(0o700)  # logs and the Redis log: for this user only
        self.redis = RedisServer(
            port=self.settings.redis_port or None, data_dir=data / "redis", binary=self.settings.redis_server
        ).start()
        env = dict(
            os.environ,
            FEQA_REDIS_URL=self.redis.url,
            FEQA_INGEST_HOST=self.settings.host,
            FEQA_INGEST_PORT=str(self.settings.ingest_port),
            FEQA_DASHBOARD_HOST=self.settings.host,
            FEQA_DASHBOARD_PORT=str(self.settings.dashboard_port),
        )
        env.update(self._dashboard_env(data, env))
        logs = data / "logs"
        logs.mkdir(exist_ok=True, mode=0o700)
        try:
            for spec in self.services:
                self._spawn(spec, env, logs)
            for child in self.children:
                if child.url:
                    self._wait_port(child)
        except BaseException:
            self.stop()
            raise

    def _dashboard_env(self, data: Path, env: dict[str, str]) -> dict[str, str]:
        """The dashboard's database in the data folder, and the ingest service key they share (made for this run
        unless the operator set one; the dashboard reads it from a 0600 file, the ingest from its setting)."""
        out = {"FEQA_DASHBOARD_INGEST_URL": f"http://{self.settings.host}:{self.settings.ingest_port}"}
        if "FEQA_DASHBOARD_DATABASE_URL" not in env:
            out["FEQA_DASHBOARD_DATABASE_URL"] = f"sqlite:///{data / 'dashboard.sqlite'}"
        key = env.get("FEQA_INGEST_API_KEY") or secrets.token_urlsafe(32)
        out["FEQA_INGEST_API_KEY"] = key
        if "FEQA_DASHBOARD_INGEST_API_KEY" not in env and "FEQA_DASHBOARD_INGEST_API_KEY_FILE" not in env:
            key_file = data / "ingest.key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(key + "\n")
            out["FEQA_DASHBOARD_INGEST_API_KEY_FILE"] = str(key_file)
        return out

    def _spawn(self, spec: ServiceSpec, env: dict[str, str], logs: os.PathLike[str]) -> None:
        url = None
        if spec.port_of is not None:
            url = f"http://{self.settings.host}:{spec.port_of(self.settings)}{spec.page}"
        proc = subprocess.Popen([sys.executable, "-m", spec.name], env=env, start_new_session=True)
        log.info("started %s (pid %d)", spec.name, proc.pid)
        self.children.append(Child(spec, proc, url))

    def _wait_port(self, child: Child) -> None:
        port = child.spec.port_of(self.settings) if child.spec.port_of else 0
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise ConfigError(f"{child.spec.name} exited with {child.proc.returncode} while starting; see its log")
            try:
                with socket.create_connection((self.settings.host, port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise ConfigError(f"{child.spec.name} did not listen on port {port} within {self.settings.start_timeout_s} s")

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self.exit_reason = reason
            self._stop.set()

    def wait(self, poll_s: float = 0.2) -> int:
        """Block until asked to stop or a child dies; return the exit code for the launcher."""
        while not self._stop.wait(poll_s):
            for child in self.children:
                code = child.proc.poll()
                if code is not None:
                    self.request_stop(f"{child.spec.name} exited with {code}")
                    return 1
        return 0

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop every child by PID (SIGTERM, then SIGKILL), then Redis."""
        for child in self.children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in self.children:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing pid %d", child.spec.name, grace_s, child.proc.pid)
                child.proc.kill()
                child.proc.wait(5)
        self.children.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def urls(self) -> list[tuple[str, str]]:
        out = [(f"{c.spec.label or c.spec.name}", c.url) for c in self.children if c.url]
        if self.redis is not None:
            out.insert(0, ("redis", self.redis.url))
        return out
