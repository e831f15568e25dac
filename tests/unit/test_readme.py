"""The README stays true: the settings tables match the code, and its commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra import settings_doc

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_settings_tables_are_current() -> None:
    block = README.split(settings_doc.START, 1)[1].split(settings_doc.END, 1)[0]
    assert block.strip() == settings_doc.render().strip(), "run: feqa settings-doc --write README.md"


def test_every_settings_class_is_documented() -> None:
    names = {cls.__name__ for cls in settings_doc.settings_classes()}
    assert {"CommonSettings", "StackSettings"} <= names
    for cls in settings_doc.settings_classes():
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        for name in cls.model_fields:
            if f"`{prefix}{name.upper()}`" not in README and name != "common":
                pytest.fail(f"{prefix}{name.upper()} missing from README")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    block = re.search(r"## Tests\s+```bash\n(.+?)\n```", README, re.S)
    assert block is not None
    assert block.group(1).strip() in ci


def test_readme_setup_commands_exist() -> None:
    block = re.search(r"## Set up and run.*?```bash\n(.+?)\n```", README, re.S)
    assert block is not None
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert lines == ["bash infra/setup.sh", ".venv/bin/feqa demo"]  # the run command is the demo (issue 16)
    assert (ROOT / "infra" / "setup.sh").is_file()
