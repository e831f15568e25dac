"""The README's configuration tables, generated from the settings classes so the docs cannot drift.

``feqa settings-doc`` prints them; ``feqa settings-doc --write README.md`` replaces the block between the
``<!-- settings:start -->`` and ``<!-- settings:end -->`` markers.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

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
