"""docker-compose.yml and its CPU overlay say what the README says: every service healthy-checked, one image, Redis
without persistence and with a memory cap, GPUs reserved where models run, profiles for the trainer and the fleet,
secrets from files, and only variables that exist; ``docker compose config`` accepts the files where compose is
installed. The env example lists every setting at its default."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from infra import settings_doc
from infra.compose import COMPOSE_VARIABLES, SECRETS, make_secrets
from infra.health import SERVICES as CHECKED
from infra.stack import built_services

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CPU = ROOT / "infra" / "compose.cpu.yml"
PARTS = {"FEQA_INGEST_": "ingest", "FEQA_TRACKER_": "tracker", "FEQA_SCORER_": "scorer",
         "FEQA_DASHBOARD_": "dashboard", "FEQA_FLEET_": "fleet", "FEQA_STACK_": "infra"}  # fmt: skip
FEQA_SERVICES = {"ingest", "tracker", "scorer", "dashboard", "trainer", "fleet-worker", "fleet-bridge"}


class _Loader(yaml.SafeLoader):
    """Compose's YAML: ``!reset`` removes an inherited value (kept here as the marker ``"!reset"``)."""


_Loader.add_constructor("!reset", lambda loader, node: "!reset")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_Loader)
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


def settings_variables() -> dict[str, type[BaseSettings]]:
    out = {}
    for cls in settings_doc.settings_classes():
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        out.update({prefix + name.upper(): cls for name in cls.model_fields if name != "common"})
    return out


def built(part: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"{part}.settings") is not None


def test_every_service_has_a_health_check_and_feqa_services_check_themselves(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == FEQA_SERVICES | {"redis", "postgres", "kafka"}
    for name, svc in services.items():
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        if name in FEQA_SERVICES:
            assert test == ["CMD", "feqa", "health", name] and name in CHECKED, name


def test_one_image_for_every_live_service_and_each_command_exists(compose: dict[str, Any]) -> None:
    services = compose["services"]
    builds = {
        (svc["build"]["context"], svc["build"]["dockerfile"]) for n, svc in services.items() if n in FEQA_SERVICES
    }
    assert builds == {(".", "infra/Dockerfile")}
    images = {svc["image"] for n, svc in services.items() if n in FEQA_SERVICES - {"trainer"}}
    assert images == {"${FEQA_IMAGE:-feqa:latest}"}
    for name in FEQA_SERVICES - {"trainer"}:
        command = services[name]["command"]
        assert command[:2] == ["python", "-m"], name
        package = ROOT / command[2]
        assert (package / "__init__.py").is_file(), name
        # a part still being built (no __main__ yet) is skipped by `feqa up` too; every other one runs
        assert (package / "__main__.py").is_file() or command[2] not in {s.name for s in built_services()}, name
    assert {s.name for s in built_services()} <= {services[n]["command"][2] for n in FEQA_SERVICES - {"trainer"}}
    assert services["trainer"]["entrypoint"] == ["feqa"] and "train" in services["trainer"]["build"]["args"]["EXTRAS"]
    # the one image holds every package the project installs
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        package = pattern.rstrip("*")
        assert f"COPY {package} {package}" in dockerfile, f"the image lacks {package}/"


def test_redis_keeps_nothing_on_disk_and_has_a_memory_cap(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    cmd = redis["command"]
    assert cmd[0] == "redis-server"
    flags = dict(zip(cmd[1::2], cmd[2::2], strict=True))
    assert flags == {"--save": "", "--appendonly": "no", "--maxmemory": "${FEQA_REDIS_MAXMEMORY:-2gb}",
                     "--maxmemory-policy": "noeviction"}  # fmt: skip
    assert "volumes" not in redis


def test_models_run_on_reserved_gpus_and_the_cpu_overlay_removes_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    gpu = {n for n, s in services.items() if "deploy" in s}
    assert gpu == {"tracker", "scorer", "trainer"}
    for name in gpu:
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert "CUDAExecutionProvider" in services["tracker"]["environment"]["FEQA_TRACKER_PROVIDERS"]
    assert services["scorer"]["environment"]["FEQA_SCORER_DEVICE"] == "${FEQA_SCORER_DEVICE:-cuda}"
    cpu = load(CPU)["services"]
    assert {n for n, s in cpu.items() if s.get("deploy") == "!reset"} == gpu
    assert cpu["tracker"]["environment"] == {"FEQA_TRACKER_PROVIDERS": '["CPUExecutionProvider"]'}
    assert cpu["scorer"]["environment"] == {"FEQA_SCORER_DEVICE": "cpu"}


def test_profiles(compose: dict[str, Any]) -> None:
    profiles = {n: tuple(s.get("profiles", ())) for n, s in compose["services"].items()}
    assert {n for n, p in profiles.items() if p == ("fleet",)} == {"kafka", "fleet-worker", "fleet-bridge"}
    assert {n for n, p in profiles.items() if p == ("train",)} == {"trainer"}
    assert {n for n, p in profiles.items() if not p} == {
        "redis",
        "postgres",
        "ingest",
        "tracker",
        "scorer",
        "dashboard",
    }
    bridge = compose["services"]["fleet-bridge"]
    assert bridge["environment"]["FEQA_FLEET_BROKERS"] == "kafka:9092"
    assert bridge["depends_on"]["fleet-worker"]["condition"] == "service_healthy"  # the worker declares the topics


def test_secrets_come_from_files(compose: dict[str, Any]) -> None:
    assert {n: s["file"] for n, s in compose["secrets"].items()} == {n: f"./secrets/{n}" for n in SECRETS}
    known = settings_variables()
    for name, svc in compose["services"].items():
        env = svc.get("environment", {})
        mounted = {v.removeprefix("/run/secrets/") for v in env.values() if str(v).startswith("/run/secrets/")}
        assert mounted <= set(svc.get("secrets", [])), name
        assert set(svc.get("secrets", [])) <= mounted, f"{name} mounts a secret it never reads"
        for var, value in env.items():
            if str(value).startswith("/run/secrets/") and var.startswith("FEQA_"):
                assert var.endswith("_FILE") and (var in known or not built(PARTS[var[: var.index("_", 5) + 1]])), var
        for var, value in env.items():
            assert not re.search(r"(?i)(password|secret|key)", var) or str(value).startswith("/run/secrets/"), (
                f"{name}: {var} is a secret given in the compose file"
            )
    assert (
        compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/dashboard_db_password"
    )


def test_every_variable_exists_and_every_default_is_the_documented_one(compose: dict[str, Any]) -> None:
    known = settings_variables()
    used = set()
    for path in (COMPOSE, CPU):
        data = load(path)
        for name, svc in data.get("services", {}).items():
            for var in svc.get("environment", {}):
                if var.startswith("FEQA_"):
                    part = next((p for prefix, p in PARTS.items() if var.startswith(prefix)), "common")
                    assert var in known or not built(part), f"{path.name}: {name} sets {var}, which no setting reads"
        for var, default in re.findall(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}", path.read_text()):
            used.add(var)
            if var in COMPOSE_VARIABLES:
                assert default == COMPOSE_VARIABLES[var][0], f"{var} defaults to {default!r} in {path.name}"
            else:
                assert var in known or not built(PARTS.get(var[: var.index("_", 5) + 1], "common")), var
    assert set(COMPOSE_VARIABLES) <= used, "a documented compose variable is not used"


def test_the_env_example_is_current_and_lists_every_setting_at_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    example = (ROOT / settings_doc.ENV_EXAMPLE).read_text()
    assert example == settings_doc.render_env(), "run: feqa settings-doc --env infra/feqa.env.example"
    lines = dict(re.findall(r"^#(FEQA_[A-Z0-9_]+)=(.*)$", example, re.M))
    assert set(settings_variables()) | set(COMPOSE_VARIABLES) == set(lines)
    # setting every variable to the listed default changes nothing (empty ones mean unset)
    for cls in settings_doc.settings_classes():
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        for var, value in lines.items():
            if var.startswith(prefix) and value:
                monkeypatch.setenv(var, value)
        assert cls() == _clean_env(monkeypatch, cls, lines), cls.__name__


def _clean_env(monkeypatch: pytest.MonkeyPatch, cls: type[BaseSettings], lines: dict[str, str]) -> BaseSettings:
    with monkeypatch.context() as m:
        for var in lines:
            m.delenv(var, raising=False)
        return cls()


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        version = subprocess.run([standalone, "version", "--short"], capture_output=True, text=True, timeout=30)
        if version.returncode == 0 and version.stdout.strip().lstrip("v").split(".")[0] == "2":
            return [standalone]
    return None


@pytest.mark.parametrize(
    "files",
    [("docker-compose.yml",), ("docker-compose.yml", "infra/compose.cpu.yml")],
    ids=["gpu", "cpu-overlay"],
)
def test_docker_compose_config_accepts_the_files(files: tuple[str, ...], tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("Docker Compose v2 is not installed here (docker compose / docker-compose)")
    args = [*command, "--project-directory", str(ROOT), *(a for f in files for a in ("-f", str(ROOT / f)))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEQA_")}
    for profiles in ([], ["--profile", "fleet", "--profile", "train"]):
        res = subprocess.run([*args, *profiles, "config", "--format", "json"], capture_output=True, text=True,
                             timeout=60, env=env, cwd=tmp_path)  # fmt: skip
        assert res.returncode == 0, res.stderr
        import json

        resolved = json.loads(res.stdout)["services"]
        expected = {"redis", "postgres", "ingest", "tracker", "scorer", "dashboard"}
        assert set(resolved) == (
            expected | {"kafka", "fleet-worker", "fleet-bridge", "trainer"} if profiles else expected
        )
        if len(files) > 1:
            assert all("deploy" not in s or not s["deploy"] for s in resolved.values()), "the overlay kept a GPU"
            assert resolved["scorer"]["environment"]["FEQA_SCORER_DEVICE"] == "cpu"
        else:
            devices = resolved["tracker"]["deploy"]["resources"]["reservations"]["devices"]
            assert devices[0]["count"] == 1 and devices[0]["capabilities"] == ["gpu"]


def test_compose_secrets_are_made_once_random_and_private(tmp_path: Path) -> None:
    target = tmp_path / "secrets"
    created, kept = make_secrets(target)
    assert sorted(p.name for p in created) == sorted(SECRETS) and kept == []
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    values = {p.name: p.read_text().strip() for p in created}
    assert len(set(values.values())) == 2 and all(len(v) >= 40 for v in values.values())
    created2, kept2 = make_secrets(target)
    assert created2 == [] and sorted(p.name for p in kept2) == sorted(SECRETS)
    assert {p.name: p.read_text().strip() for p in kept2} == values  # never overwritten
