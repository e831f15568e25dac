"""The embedded stack: a real Redis plus every service that exists, as child processes of one launcher.

Its working directory (``.feqa/`` by default, git-ignored) is created 0700 and holds: ``ingest.key`` (the service
key, 0600, made at the first start: infra.credentials), ``stack.json`` while the stack runs (where it is:
infra.runinfo), ``logs/<service>.log`` (each service's output) and ``redis/redis.log``. Its Redis keeps no snapshot
on disk and never evicts (infra.redis_server), so no patient frame is ever written there.

Before starting anything the launcher checks its ports (infra.preflight). The workers scale out on one Redis:
``trackers`` and ``scorers`` processes (``FEQA_STACK_TRACKERS`` / ``FEQA_STACK_SCORERS``; the second and later log to
``logs/tracker-2.log`` ...) share the sessions through their leases, each named by its host and PID.
Each service runs as ``python -m <service>`` with ``FEQA_REDIS_URL`` pointing at the launcher's Redis and the key
file in its settings.
The launcher prints the URLs, watches the children, and on Ctrl-C / SIGTERM (or when a child dies) stops them all by
their PIDs: SIGTERM, then SIGKILL after a grace period, and Redis last.

Fault helpers (the fault and soak tests drive a running stack with them): :meth:`Stack.kill` SIGKILLs one service
process by its PID (no clean-up runs, as when a machine dies), :meth:`Stack.add` starts one more instance of a service
(a second tracker, or the replacement of a killed one) with the launcher's environment and a log of its own
(``logs/<service>-<n>.log``), and :meth:`Stack.restart_redis` restarts Redis on the same port; it keeps no
persistence, so every stream, group, lease and session hash is gone and the services must recover on their own.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import redis

from common.errors import ConfigError, DecodeError
from common.messages import Health
from common.streams import HEALTH
from infra import credentials, preflight, runinfo
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
    ServiceSpec("ingest", lambda s: s.ingest_port, "/", "ingest (patient links)"),
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
    log_path: Path
    log_file: IO[bytes]

    def log_tail(self, n: int = 12) -> str:
        """The last lines this service wrote (for messages about why it stopped)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return ""
        return "\n".join("    " + line for line in lines)


class Stack:
    """Start Redis and the built services; :meth:`wait` blocks until a stop signal or a child exits."""

    def __init__(self, settings: StackSettings, services: list[ServiceSpec] | None = None) -> None:
        self.settings = settings
        built = built_services() if services is None else services
        # what is not built or not configured, with advice; a part that would only fail at its start is left out
        self.advice = preflight.warnings(settings, [s.name for s in built], [s.name for s in SERVICES])
        skipped = {a.part for a in self.advice if a.skip}
        self.services = [s for s in built if s.name not in skipped]
        self.redis: RedisServer | None = None
        self.children: list[Child] = []
        self._stop = threading.Event()
        self.exit_reason = ""
        self.data = settings.data_dir.resolve()
        self.key: credentials.ServiceKeyFile | None = None
        self._env: dict[str, str] = {}
        self._spawned: dict[str, int] = {}  # service name -> processes started so far (names the extra logs)

    def start(self) -> None:
        """Check the ports, make the data folder and the key, start Redis and the services, record where they are;
        :class:`ConfigError` (with everything started so far stopped) when something cannot start."""
        preflight.check_ports(self.settings, [s.name for s in self.services])
        data = self.data
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        data.chmod(0o700)  # the key, logs and the Redis log: for this user only
        self.key = credentials.ensure_key(data)
        s = self.settings
        self.redis = RedisServer(port=s.redis_port or None, data_dir=data / "redis", binary=s.redis_server,
                                 maxmemory=s.redis_maxmemory).start()  # fmt: skip
        env = dict(
            os.environ,
            FEQA_REDIS_URL=self.redis.url,
            FEQA_INGEST_HOST=self.settings.host,
            FEQA_INGEST_PORT=str(self.settings.ingest_port),
            FEQA_DASHBOARD_HOST=self.settings.host,
            FEQA_DASHBOARD_PORT=str(self.settings.dashboard_port),
            FEQA_LAUNCHER_PID=str(os.getpid()),  # each service stops once this process is gone (common.launcher)
        )
        env.update(self._service_env(data, env))
        self._env = env
        logs = data / "logs"
        logs.mkdir(exist_ok=True, mode=0o700)
        try:
            for spec in self.services:
                for _ in range(self.instance_count(spec)):
                    self._spawn(spec, env, logs)
            for child in self.children:
                if child.url:
                    self._wait_port(child)
                else:
                    self._wait_alive(child)
            runinfo.write(data, self.run_info(env))
        except BaseException:
            self.stop()
            raise

    def _service_env(self, data: Path, env: dict[str, str]) -> dict[str, str]:
        """The service key the ingest and the dashboard share (the stored key file, infra.credentials; or the
        operator's own FEQA_INGEST_API_KEY, which then goes to both), and the dashboard's ingest URL and database
        in the data folder."""
        out = {"FEQA_DASHBOARD_INGEST_URL": f"http://{self.settings.host}:{self.settings.ingest_port}"}
        if "FEQA_DASHBOARD_DATABASE_URL" not in env:
            out["FEQA_DASHBOARD_DATABASE_URL"] = f"sqlite:///{data / 'dashboard.sqlite'}"
        dashboard_has_key = "FEQA_DASHBOARD_INGEST_API_KEY" in env or "FEQA_DASHBOARD_INGEST_API_KEY_FILE" in env
        if "FEQA_INGEST_API_KEY" in env:
            if not dashboard_has_key:
                out["FEQA_DASHBOARD_INGEST_API_KEY"] = env["FEQA_INGEST_API_KEY"]
        elif self.key is not None:
            out["FEQA_INGEST_API_KEY_FILE"] = str(self.key.path)
            if not dashboard_has_key:
                out["FEQA_DASHBOARD_INGEST_API_KEY_FILE"] = str(self.key.path)
        return out

    def run_info(self, env: dict[str, str]) -> runinfo.RunInfo:
        redis_url = self.redis.url if self.redis else ""
        key_file = env.get("FEQA_INGEST_API_KEY_FILE", "")
        return runinfo.RunInfo(os.getpid(), redis_url, self.settings.host, self.settings.ingest_port, key_file,
                               {label: url for label, url in self.urls()})  # fmt: skip

    def instance_count(self, spec: ServiceSpec) -> int:
        """How many processes of ``spec`` start: the workers scale out (``trackers``, ``scorers``), the rest are 1."""
        return {"tracker": self.settings.trackers, "scorer": self.settings.scorers}.get(spec.name, 1)

    def _spawn(self, spec: ServiceSpec, env: dict[str, str], logs: Path) -> Child:
        url = None
        if spec.port_of is not None:
            url = f"http://{self.settings.host}:{spec.port_of(self.settings)}{spec.page}"
        n = self._spawned.get(spec.name, 0) + 1
        self._spawned[spec.name] = n
        path = logs / (f"{spec.name}.log" if n == 1 else f"{spec.name}-{n}.log")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        out = os.fdopen(fd, "ab")
        proc = subprocess.Popen([sys.executable, "-m", spec.name], env=env, start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        log.info("started %s (pid %d), logging to %s", spec.name, proc.pid, path)
        child = Child(spec, proc, url, path, out)
        self.children.append(child)
        return child

    def instances(self, name: str) -> list[Child]:
        """The running processes of service ``name``, oldest first."""
        return [c for c in self.children if c.spec.name == name]

    def add(self, name: str, env: dict[str, str] | None = None) -> Child:
        """Start one more process of service ``name`` (with ``env`` over the launcher's environment) and wait until
        it is up, as :meth:`start` does; :class:`ConfigError` when it cannot start."""
        spec = next((s for s in self.services if s.name == name), None)
        if spec is None or not self._env:
            raise ConfigError(f"{name} is not a service of this running stack")
        child = self._spawn(spec, dict(self._env, **(env or {})), self.data / "logs")
        if child.url:
            self._wait_port(child)
        else:
            self._wait_alive(child)
        return child

    def kill(self, child: Child) -> None:
        """SIGKILL one service process by its PID (nothing of it runs afterwards) and forget it."""
        child.proc.send_signal(signal.SIGKILL)
        child.proc.wait(10)
        child.log_file.close()
        self.children.remove(child)
        log.info("killed %s (pid %d)", child.spec.name, child.proc.pid)

    def restart_redis(self) -> None:
        """Stop Redis and start it again on the same port (its data is gone: it keeps no persistence)."""
        if self.redis is None:
            raise ConfigError("the stack's Redis is not running")
        self.redis.restart()

    def _wait_port(self, child: Child) -> None:
        port = child.spec.port_of(self.settings) if child.spec.port_of else 0
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise ConfigError(
                    f"{child.spec.name} exited with {child.proc.returncode} while starting; the end of "
                    f"{child.log_path}:\n{child.log_tail()}"
                )
            try:
                with socket.create_connection((self.settings.host, port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise ConfigError(
            f"{child.spec.name} did not listen on port {port} within {self.settings.start_timeout_s} s; the end of "
            f"{child.log_path}:\n{child.log_tail()}"
        )

    def _wait_alive(self, child: Child) -> None:
        """A worker is up once it has published its first health entry (its instance name ends in its PID) or
        written to its log (services log when their settings and models are loaded, at INFO: a log level above that
        leaves only the health entry); a worker that does neither gets a warning after the start timeout, not an
        error."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        assert self.redis is not None  # started before any service
        # one client for the whole wait (not one per poll)
        with redis.Redis.from_url(self.redis.url, socket_connect_timeout=1.0, socket_timeout=1.0) as client:
            while time.monotonic() < deadline:
                if child.proc.poll() is not None:
                    raise ConfigError(
                        f"{child.spec.name} exited with {child.proc.returncode} while starting; the end of "
                        f"{child.log_path}:\n{child.log_tail()}"
                    )
                if child.log_path.stat().st_size > 0 or _reported_health(client, child):
                    return
                time.sleep(0.1)
        log.warning("%s has not said it started within %.0f s; see %s", child.spec.name,
                    self.settings.start_timeout_s, child.log_path)  # fmt: skip

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
                    self.request_stop(f"{child.spec.name} exited with {code}; the end of {child.log_path}:\n"
                                      f"{child.log_tail()}")  # fmt: skip
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
            child.log_file.close()
        self.children.clear()
        runinfo.clear(self.data)
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def urls(self) -> list[tuple[str, str]]:
        out = [(f"{c.spec.label or c.spec.name}", c.url) for c in self.children if c.url]
        if self.redis is not None:
            out.insert(0, ("redis", self.redis.url))
        return out


def _reported_health(client: redis.Redis, child: Child) -> bool:
    """Whether the stack's Redis holds a health entry of this process (service name, instance ``*-<pid>``)."""
    try:
        entries = client.xrevrange(HEALTH.key(None), count=100)
    except redis.RedisError:
        return False
    suffix = f"-{child.proc.pid}"
    for _, fields in entries or []:
        try:
            health = Health.decode(dict(fields or {}))  # type: ignore[arg-type]  # bytes: no decode_responses
        except DecodeError:
            continue
        if health.service == child.spec.name and health.instance.endswith(suffix):
            return True
    return False
