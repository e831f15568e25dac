"""The ``feqa`` command: ``feqa up`` runs the local stack; each built part adds its own command group."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

import click

from common.logs import setup_logging
from infra import settings_doc as settings_tables
from infra.settings import StackSettings
from infra.stack import Stack

log = logging.getLogger(__name__)

# (command name, module, attribute) of each part's click command or group, registered when the part is built.
PART_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("phantom", "phantom.cli", "phantom"),
    ("ingest", "ingest.cli", "cli"),
    ("tracker", "tracker.cli", "cli"),
    ("dashboard", "dashboard.cli", "cli"),
    ("prepare", "trainer.cli", "prepare"),
    ("train", "trainer.cli", "train"),
    ("evaluate", "trainer.cli", "evaluate"),
    ("export", "trainer.cli", "export"),
)


class _PartsGroup(click.Group):
    """A group that imports a part's commands only when they are asked for (torch stays out of ``feqa up``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        parts = [name for name, module, _ in PART_COMMANDS if _available(module)]
        return sorted(set(super().list_commands(ctx)) | set(parts))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        for name, module_name, attr in PART_COMMANDS:
            if name == cmd_name and _available(module_name):
                command = getattr(importlib.import_module(module_name), attr, None)
                if isinstance(command, click.Command):
                    return command
        return None


def _available(module_name: str) -> bool:
    return (
        importlib.util.find_spec(module_name.split(".")[0]) is not None
        and importlib.util.find_spec(module_name) is not None
    )


@click.group(cls=_PartsGroup, context_settings={"help_option_names": ["-h", "--help"]})
def feqa() -> None:
    """feqa: a live monitor of facial motor function (expression-quality scores from a camera)."""


@feqa.command()
def up() -> None:
    """Start Redis and every built service on this machine; Ctrl-C stops them all."""
    settings = StackSettings()
    setup_logging(settings.common.log_level, settings.common.log_format)
    stack = Stack(settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stack.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    click.echo(f"starting feqa: redis + {', '.join(s.name for s in stack.services) or 'no services built yet'}")
    stack.start()
    for label, url in stack.urls():
        click.echo(f"  {label:<20} {url}")
    if any(s.name == "dashboard" for s in stack.services):
        click.echo("  first login? run: feqa dashboard create-clinic NAME, then create-admin or create-clinician")
    click.echo("feqa is up; press Ctrl-C to stop", err=False)
    code = 0
    try:
        code = stack.wait()
    finally:
        click.echo(f"stopping feqa ({stack.exit_reason or 'exit'})")
        stack.stop()
        click.echo("stopped")
    sys.exit(code)


@feqa.command("settings-doc")
@click.option("--write", "write_to", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
def settings_doc(write_to: Path | None) -> None:
    """Print the configuration tables (every environment variable), or refresh them in a README."""
    if write_to is None:
        click.echo(settings_tables.render(), nl=False)
    else:
        changed = settings_tables.write(write_to)
        click.echo(f"{write_to}: {'updated' if changed else 'already current'}")


def main() -> None:
    """Console entry point."""
    feqa()
