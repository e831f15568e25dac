"""Container health checks: ``feqa health SERVICE`` exits 0 when the service in this container is healthy, else 1
with the reasons on stderr. Each check is cheap (well under a second when healthy) and bounded by ``timeout_s``.

============ ==========================================================================================
service      healthy when
============ ==========================================================================================
ingest       ``GET /healthz`` on the ingest's own port answers 200 (it serves HTTP and has its registry)
dashboard    ``GET /healthz`` answers 200 (the dashboard's database and Redis answered it within 2 s)
tracker      its settings load, the configured landmarker's model files are in place, and this host's tracker
             published a Health entry in the last ``max_age_s``
scorer       its settings load, Redis answers, and this host's scorer published a Health entry in the last
             ``max_age_s`` (it does every few seconds while its loop runs)
fleet-bridge its settings load, Redis answers, a Kafka broker accepts a connection, and this host's bridge
             published a Health entry in the last ``max_age_s``
fleet-worker the Faust worker's web server answers on ``FEQA_FLEET_WEB_PORT``
trainer      torch imports and the models directory is writable (the trainer is a batch job)
============ ==========================================================================================

"This host" is the container: Health instances are named ``<host>-<pid>`` by default (``FEQA_TRACKER_CONSUMER``,
``FEQA_SCORER_CONSUMER``, ``FEQA_FLEET_CONSUMER`` empty).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from common.bus import Backoff, Bus, Timeouts
from common.errors import FeqaError
from common.settings import CommonSettings
from common.streams import HEALTH

Problems = list[str]
SERVICES = ("ingest", "dashboard", "tracker", "scorer", "fleet-bridge", "fleet-worker", "trainer")


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def _settings(module: str, cls: str, problems: Problems) -> Any:
    """The service's settings from this environment, or None with the validation error as a problem."""
    if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
        problems.append(f"{module} is not built into this image")
        return None
    try:
        return getattr(importlib.import_module(module), cls)()
    except (ValidationError, FeqaError, ValueError) as exc:
        problems.append(f"its settings do not load: {exc}".replace("\n", " "))
        return None


async def _http(host: str, port: int, path: str, timeout_s: float) -> str | None:
    url = f"http://{_local(host)}:{port}{path}"
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as http:
            res = await http.get(url)
    except httpx.HTTPError as exc:
        return f"no answer from {url} ({type(exc).__name__})"
    if res.status_code != 200:
        return f"{url} answered {res.status_code}: {res.text[:200]}"
    return None


async def _fresh_health(common: CommonSettings, service: str, max_age_s: float, timeout_s: float) -> str | None:
    host = socket.gethostname()
    try:
        bus = await Bus.connect(common.redis_url, name="healthcheck", backoff=Backoff(first_s=0.05, budget_s=timeout_s),
                                timeouts=Timeouts(timeout_s, timeout_s))  # fmt: skip
    except FeqaError as exc:
        return f"Redis does not answer at {common.redis_url}: {exc}"
    try:
        entries = [d.message for d in await bus.latest(HEALTH, None, 1000)]
    finally:
        await bus.close()
    mine = [h.ts for h in entries if h.service == service and h.instance.startswith(f"{host}-")]
    if not mine:
        return f"no Health entry of {service} from this host ({host}) in the newest {len(entries)}"
    age = time.time() - max(mine)
    if age > max_age_s:
        return f"this host's {service} last reported {age:.0f} s ago (more than {max_age_s:.0f} s)"
    return None


async def _tcp(hostport: str, timeout_s: float) -> str | None:
    host, _, port = hostport.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout_s)
    except (OSError, TimeoutError) as exc:
        return f"Kafka broker {hostport} refuses connections ({type(exc).__name__})"
    writer.close()
    return None


# ---------------------------------------------------------------------------------------------- per service


async def _http_service(module: str, cls: str, timeout_s: float) -> Problems:
    """An HTTP service is healthy when its /healthz answers at the host and port its settings name."""
    problems: Problems = []
    s = _settings(module, cls, problems)
    if s is not None:
        problems += filter(None, [await _http(s.host, s.port, "/healthz", timeout_s)])
    return problems


async def _ingest(timeout_s: float, _max_age_s: float) -> Problems:
    return await _http_service("ingest.settings", "IngestSettings", timeout_s)


async def _dashboard(timeout_s: float, _max_age_s: float) -> Problems:
    return await _http_service("dashboard.settings", "DashboardSettings", timeout_s)


async def _tracker(timeout_s: float, max_age_s: float) -> Problems:
    problems: Problems = []
    s = _settings("tracker.settings", "TrackerSettings", problems)
    if s is None:
        return problems
    problems += await asyncio.to_thread(_tracker_models, s)
    problems += filter(None, [await _fresh_health(s.common, "tracker", max_age_s, timeout_s)])
    return problems


def _tracker_models(s: Any) -> Problems:
    if s.landmarker == "mediapipe":
        from tracker.mediapipe.convert import CONVERTER_VERSION
        from tracker.mediapipe.models import is_complete

        if not is_complete(Path(s.mediapipe_dir), CONVERTER_VERSION):
            return [f"MediaPipe face models missing or stale in {s.mediapipe_dir}: run feqa tracker fetch-models"]
    elif s.landmarker == "insightface":
        missing = [
            Path(s.model_dir) / n for n in (s.det_model, s.landmark_model) if not (Path(s.model_dir) / n).is_file()
        ]
        return [f"insightface model {m} is missing" for m in missing]
    return []


async def _scorer(timeout_s: float, max_age_s: float) -> Problems:
    problems: Problems = []
    s = _settings("scorer.settings", "ScorerSettings", problems)
    if s is not None:
        problems += filter(None, [await _fresh_health(s.common, "scorer", max_age_s, timeout_s)])
    return problems


async def _fleet_bridge(timeout_s: float, max_age_s: float) -> Problems:
    problems: Problems = []
    s = _settings("fleet.settings", "FleetSettings", problems)
    if s is None:
        return problems
    reached = [await _tcp(b, timeout_s) for b in s.broker_list()]
    if all(reached):
        problems += [r for r in reached if r]
    problems += filter(None, [await _fresh_health(s.common, "fleet-bridge", max_age_s, timeout_s)])
    return problems


async def _fleet_worker(timeout_s: float, _max_age_s: float) -> Problems:
    problems: Problems = []
    s = _settings("fleet.settings", "FleetSettings", problems)
    if s is not None:
        problems += filter(None, [await _http(s.web_host, s.web_port, "/", timeout_s)])
    return problems


async def _trainer(_timeout_s: float, _max_age_s: float) -> Problems:
    return await asyncio.to_thread(_trainer_files)


def _trainer_files() -> Problems:
    problems: Problems = []
    if importlib.util.find_spec("torch") is None:
        problems.append("torch is not installed (build the image with the train extra)")
    models = Path(CommonSettings().models_dir)
    try:
        models.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=models, prefix=".health-"):
            pass
    except OSError as exc:
        problems.append(f"the models directory {models} is not writable: {exc.strerror or exc}")
    return problems


CHECKS: dict[str, Callable[[float, float], Awaitable[Problems]]] = {
    "ingest": _ingest,
    "dashboard": _dashboard,
    "tracker": _tracker,
    "scorer": _scorer,
    "fleet-bridge": _fleet_bridge,
    "fleet-worker": _fleet_worker,
    "trainer": _trainer,
}


async def check(service: str, *, timeout_s: float = 3.0, max_age_s: float = 30.0) -> Problems:
    """What is wrong with ``service`` here (empty: healthy); the whole check takes at most about ``timeout_s``."""
    if service not in CHECKS:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    try:
        return await asyncio.wait_for(CHECKS[service](timeout_s, max_age_s), timeout_s * 3)
    except TimeoutError:
        return [f"the check took longer than {timeout_s * 3:.0f} s"]
