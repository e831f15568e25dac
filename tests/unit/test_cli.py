"""The ``feqa`` command finds every built part's commands."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from infra.cli import PART_COMMANDS, feqa

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("name", "module", "attr"), PART_COMMANDS)
def test_each_part_command_resolves(name: str, module: str, attr: str) -> None:
    ctx = click.Context(feqa)
    command = feqa.get_command(ctx, name)
    assert isinstance(command, click.Command), f"{module}.{attr} is not a click command"
    result = CliRunner().invoke(feqa, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: feqa" in result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(feqa, ["fly"])
    assert result.exit_code == 2
    assert "No such command" in result.output
