"""What ``feqa up`` checks before it starts anything: that its ports are free (else it stops with a message naming
the port and the setting that moves it), and what is not built or not configured (warnings with the advice that
fixes each, never errors: the stack runs without them, with less).
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

from common.errors import ConfigError
from infra.settings import StackSettings


@dataclasses.dataclass(frozen=True)
class Advice:
    part: str
    problem: str
    advice: str
    skip: bool = False  # the part would only fail at start: it is not started

    def __str__(self) -> str:
        return f"{self.part}: {self.problem}{' (not started)' if self.skip else ''}; {self.advice}"


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (as uvicorn does, with SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(settings: StackSettings, services: list[str]) -> None:
    """Raise :class:`ConfigError` naming the first port in use."""
    wanted: list[tuple[str, str, int, str]] = []
    if settings.redis_port:
        wanted.append(("redis", "127.0.0.1", settings.redis_port, "FEQA_STACK_REDIS_PORT (0 picks a free one)"))
    if "ingest" in services:
        wanted.append(("ingest", settings.host, settings.ingest_port, "FEQA_STACK_INGEST_PORT"))
    if "dashboard" in services:
        wanted.append(("dashboard", settings.host, settings.dashboard_port, "FEQA_STACK_DASHBOARD_PORT"))
    seen: dict[int, str] = {}
    for name, host, port, setting in wanted:
        if port in seen:
            raise ConfigError(f"the {name} and the {seen[port]} are both set to port {port}; change {setting}")
        seen[port] = name
        if not port_free(host, port):
            raise ConfigError(
                f"port {port} ({name}) on {host} is already in use: stop what uses it (another feqa up?) "
                f"or choose another port with {setting}"
            )


def warnings(settings: StackSettings, built: list[str], all_services: list[str]) -> list[Advice]:
    """What is not built or not configured, each with what to do about it (``skip``: do not start that part)."""
    out: list[Advice] = []
    for name in all_services:
        if name not in built:
            out.append(Advice(name, "not built in this checkout, so it is not started", _NOT_BUILT.get(name, "")))
    if "tracker" in built:
        out.extend(_tracker_models())
    if "scorer" in built and not _any_model(settings.common.models_dir):
        out.append(Advice("scorer", f"no trained model under {settings.common.models_dir}/", _NO_MODELS))
    return out


_NOT_BUILT = {
    "scorer": "sessions get observations and kinematics but no scores",
    "dashboard": "create sessions with: feqa ingest new-session --protocol pfed5 --patient-id ID",
    "tracker": "nothing turns frames into landmarks",
}
_NO_MODELS = (
    "scores are withheld until one exists: train and export one (feqa train, then feqa export), see the README's "
    "Training data"
)


def _tracker_models() -> list[Advice]:
    from tracker.settings import TrackerSettings

    ts = TrackerSettings()
    if ts.landmarker == "phantom":
        advice = "camera faces get no landmarks; unset FEQA_TRACKER_LANDMARKER for the real landmarker"
        return [Advice("tracker", "runs the phantom's ground truth (a test oracle)", advice)]
    if ts.landmarker == "mediapipe":
        from common.errors import ModelError
        from tracker.mediapipe.models import DETECTOR, IRIS, MESH, verified_path

        try:
            for spec in (DETECTOR, MESH, *((IRIS,) if ts.iris else ())):
                verified_path(ts.mediapipe_dir, spec)
        except ModelError as exc:
            advice = "run: feqa tracker fetch-models (infra/setup.sh does), then feqa up again"
            return [Advice("tracker", f"its face models are not ready ({exc})".split(";")[0] + ")", advice, True)]
        return []
    model_dir = Path(ts.model_dir)
    missing = [name for name in (ts.det_model, ts.landmark_model) if not (model_dir / name).is_file()]
    if not missing:
        return []
    return [
        Advice(
            "tracker",
            f"the insightface pack is not in {model_dir}/ ({', '.join(missing)} missing)",
            "feqa never downloads it (non-commercial licence): copy the buffalo_l pack there if you may use it, or "
            "unset FEQA_TRACKER_LANDMARKER for MediaPipe; check with feqa tracker check-models",
            True,
        )
    ]


def _any_model(models_dir: Path) -> bool:
    return any(models_dir.glob("*/*/*/manifest.json"))
