"""The README's configuration tables and the env example file, generated from the settings classes so neither
can drift.

``feqa settings-doc`` prints the tables; ``feqa settings-doc --write README.md`` replaces the block between the
``<!-- settings:start -->`` and ``<!-- settings:end -->`` markers; ``feqa settings-doc --env infra/feqa.env.example``
writes the env example: every variable, commented out at its default, then docker-compose.yml's own variables.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from infra.compose import COMPOSE_VARIABLES

START = "<!-- settings:start -->"
END = "<!-- settings:end -->"
PARTS = ("common", "infra", "ingest", "tracker", "scorer", "dashboard", "fleet", "trainer", "phantom")


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class defined in a part's ``settings`` module, in flow order."""
    found: list[type[BaseSettings]] = []
    for part in PARTS:
        if importlib.util.find_spec(part) is None or importlib.util.find_spec(f"{part}.settings") is None:
            continue
        module = importlib.import_module(f"{part}.settings")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseSettings)
                and obj.__module__ == module.__name__
                and any(not _nested(f.annotation) for f in obj.model_fields.values())
            ):
                found.append(obj)
    return found


def _nested(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseSettings)


def _default(value: object) -> str:
    if value is PydanticUndefined:
        return "(required)"
    if value is None:
        return "(unset)"
    if isinstance(value, (list, tuple)):
        return "`" + ",".join(str(v) for v in value) + "`" if value else "(empty)"
    return f"`{value}`"


def render() -> str:
    """The markdown tables, one per settings class."""
    out: list[str] = []
    for cls in settings_classes():
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        title = (cls.__doc__ or cls.__name__).strip().splitlines()[0]
        out += [f"`{prefix}*` — {title}", "", "| variable | default | meaning |", "|---|---|---|"]
        for name, field in cls.model_fields.items():
            if _nested(field.annotation):
                continue
            default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
            desc = (field.description or "").replace("|", "\\|")
            out.append(f"| `{prefix}{name.upper()}` | {_default(default)} | {desc} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def write(readme: Path) -> bool:
    """Replace the marked block in ``readme``; return whether it changed."""
    text = readme.read_text()
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{readme} has no {START} ... {END} block")
    new = f"{head}{START}\n{render()}{END}{tail}"
    if new != text:
        readme.write_text(new)
    return new != text


ENV_EXAMPLE = Path("infra") / "feqa.env.example"
ENV_HEADER = """\
# feqa settings: every environment variable with its default, generated from the settings classes
# (feqa settings-doc --env infra/feqa.env.example; a test fails when it drifts). Nothing here is set: uncomment what
# you change. Lists are JSON. Secrets have no default: give them as files (the *_FILE settings).
#
# With docker compose: copy this file to .env beside docker-compose.yml; compose passes it to every feqa container
# and reads the compose variables at the end from it. docker-compose.yml pins what wires the containers together
# (Redis URL, hosts, ports, database URL, secret files), so those lines have no effect under compose.
"""


def _env_value(value: Any) -> str:
    if value is None or value is PydanticUndefined or isinstance(value, SecretStr):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), separators=(",", ":"))
    return str(value)


def render_env() -> str:
    """The env example: one commented line per variable, grouped by settings class, then compose's own."""
    out = [ENV_HEADER]
    for cls in settings_classes():
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        title = (cls.__doc__ or cls.__name__).strip().splitlines()[0]
        out.append(f"# ---- {prefix}* : {title}")
        for name, field in cls.model_fields.items():
            if _nested(field.annotation):
                continue
            default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
            note = " (required)" if default is PydanticUndefined else ""
            if field.description:
                out.append(f"# {field.description}{note}")
            out.append(f"#{prefix}{name.upper()}={_env_value(default)}")
        out.append("")
    out.append("# ---- docker-compose.yml's own variables (interpolated by compose, not read by the services)")
    for name, (default, meaning) in COMPOSE_VARIABLES.items():
        out += [f"# {meaning}", f"#{name}={default}"]
    return "\n".join(out).rstrip() + "\n"


def write_env(path: Path) -> bool:
    """Write the env example to ``path``; return whether it changed."""
    new = render_env()
    if path.exists() and path.read_text() == new:
        return False
    path.write_text(new)
    return True
