"""The ``feqa`` command: ``feqa up`` runs the local stack; ``feqa key`` shows or rotates its service key; ``feqa
watch SID`` follows a session; each built part adds its own command group.

While a stack runs, every other ``feqa`` command talks to it without settings (infra.runinfo: its Redis URL, the
ingest's address and the key file become the defaults of this process's settings).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import click

from common.errors import ConfigError, FeqaError
from common.logs import setup_logging
from infra import compose as compose_files
from infra import credentials, runinfo
from infra import health as health_checks
from infra import settings_doc as settings_tables
from infra.settings import StackSettings
from infra.stack import Stack
from infra.watch import watch_session

log = logging.getLogger(__name__)

# (command name, module, attribute) of each part's click command or group, registered when the part is built.
PART_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("phantom", "phantom.cli", "phantom"),
    ("ingest", "ingest.cli", "cli"),
    ("tracker", "tracker.cli", "cli"),
    ("scorer", "scorer.cli", "cli"),
    ("dashboard", "dashboard.cli", "cli"),
    ("fleet", "fleet.cli", "cli"),
    ("prepare", "trainer.cli", "prepare"),
    ("train", "infra.demo_train", "train"),  # the trainer's train, plus --demo
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


_OWN_SETTINGS = {"up", "settings-doc", "key"}  # commands that do not follow a running stack


@click.group(cls=_PartsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def feqa(ctx: click.Context) -> None:
    """feqa: a live monitor of facial motor function (expression-quality scores from a camera)."""
    if ctx.invoked_subcommand not in _OWN_SETTINGS:
        runinfo.apply_defaults(StackSettings().data_dir, os.environ)


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
    try:
        stack.start()
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from None
    for label, url in stack.urls():
        click.echo(f"  {label:<24} {url}")
    key = stack.key
    if key is not None and key.created:
        click.echo(f"  {'service key (new)':<24} {key.key}")
        click.echo(f"  {'':<24} stored in {key.path} (0600); shown only now; rotate with: feqa key rotate")
    elif key is not None:
        click.echo(f"  {'service key':<24} in {key.path} (show it with: feqa key show)")
    click.echo(f"  {'logs':<24} {stack.data / 'logs'}/")
    for advice in stack.advice:
        click.echo(f"  warning: {advice}", err=False)
    click.echo("  first session: feqa ingest new-session --protocol pfed5 --patient-id demo-1 (see the README)")
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


@feqa.command()
@click.option("--patients", default=2, show_default=True, type=click.IntRange(1, 16), help="phantom patients")
@click.option("--rounds", default=0, show_default=True, type=click.IntRange(0), help="sessions each; 0: until Ctrl-C")
@click.option("--reps", default=2, show_default=True, type=click.IntRange(1, 5), help="repetitions of each task")
@click.option("--tasks", default="", help="when the committed demo models do not fit: train these pfed5 tasks only "
              "(comma-separated)")  # fmt: skip
@click.option("--seed", default=1, show_default=True, help="draws the phantom patients")
@click.option("--models-root", type=click.Path(file_okay=False, path_type=Path), default=Path("models"),
              show_default=True, help="demo models trained here are cached in its demo/ folder")  # fmt: skip
def demo(patients: int, rounds: int, reps: int, tasks: str, seed: int, models_root: Path) -> None:
    """The stack with phantom patients streaming a pfed5 protocol; prints the dashboard URL and a demo login."""
    from infra.demo import Demo, DemoOptions, prepare_models
    from infra.demo_models import DemoTraining

    settings = StackSettings()
    setup_logging(settings.common.log_level, settings.common.log_format)
    chosen = tuple(t.strip() for t in tasks.split(",") if t.strip())
    opts = DemoOptions(patients=patients, rounds=rounds, reps=reps, seed=seed, models_root=models_root,
                       training=DemoTraining(tasks=chosen))  # fmt: skip
    try:
        models = prepare_models(opts, click.echo)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    runner = Demo(opts, settings)
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await runner.run(stop, click.echo)

    click.echo("starting feqa demo: redis, ingest, tracker (MediaPipe), scorer, dashboard")
    code = 0
    try:
        runner.start(models)
        click.echo(f"  dashboard            {runner.dashboard_url}/")
        click.echo(f"  login                user {runner.username}  password {runner.password}")
        click.echo(f"  patient page         {runner.ingest_url}/")
        click.echo("the password was generated for this run; press Ctrl-C to stop", err=False)
        asyncio.run(main())
        if runner.stack is not None and runner.stack.exit_reason:
            click.echo(f"a service stopped: {runner.stack.exit_reason}", err=True)
            code = 1
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        click.echo("stopping feqa demo")
        runner.stop()
        click.echo("stopped")
    sys.exit(code)


@feqa.group()
def key() -> None:
    """The stack's service key (the credential the dashboard and the CLI send to the ingest)."""


@key.command("show")
def key_show() -> None:
    """Print the service key and where it is stored."""
    settings = StackSettings()
    path = credentials.key_path(settings.data_dir)
    if not path.is_file():
        raise click.ClickException(f"no service key at {path}: feqa up makes one at its first start")
    click.echo(f"{path.read_text().strip()}\n(stored in {path})")


@key.command("rotate")
def key_rotate() -> None:
    """Replace the service key; a running ingest and dashboard use the new one from their next request."""
    settings = StackSettings()
    try:
        made = credentials.rotate_key(settings.data_dir)
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"new service key: {made.key}\n(stored in {made.path}; the old key no longer works)")


@feqa.command("watch")
@click.argument("sid")
@click.option("--seconds", type=float, default=None, help="stop after this long (default: when the session ends)")
def watch(sid: str, seconds: float | None) -> None:
    """Follow session SID: frames, faces, task and scores, once a second, until it ends."""
    settings = StackSettings()
    setup_logging("WARNING", settings.common.log_format)
    try:
        code = asyncio.run(watch_session(settings.common, sid, seconds, click.echo))
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@feqa.command("settings-doc")
@click.option("--write", "write_to", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--env", "env_to", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the env example (every variable at its default) to this file")  # fmt: skip
def settings_doc(write_to: Path | None, env_to: Path | None) -> None:
    """Print the configuration tables (every environment variable), or refresh them in a README / an env example."""
    if write_to is None and env_to is None:
        click.echo(settings_tables.render(), nl=False)
    if write_to is not None:
        changed = settings_tables.write(write_to)
        click.echo(f"{write_to}: {'updated' if changed else 'already current'}")
    if env_to is not None:
        changed = settings_tables.write_env(env_to)
        click.echo(f"{env_to}: {'updated' if changed else 'already current'}")


@feqa.command("compose-secrets")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("secrets"),
              show_default=True, help="where docker-compose.yml looks for its secret files")  # fmt: skip
def compose_secrets(directory: Path) -> None:
    """Create docker compose's secret files (random service key and database password); existing ones are kept."""
    created, kept = compose_files.make_secrets(directory)
    for path in created:
        click.echo(f"created {path} ({compose_files.SECRETS[path.name]})")
    for path in kept:
        click.echo(f"kept    {path} (already there; delete it to make a new one)")


@feqa.command()
@click.argument("service", type=click.Choice(health_checks.SERVICES))
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=3.0, show_default=True)
@click.option("--max-age", "max_age_s", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="newest Health entry of this host's worker may be this old (scorer, fleet-bridge)")  # fmt: skip
def health(service: str, timeout_s: float, max_age_s: float) -> None:
    """Exit 0 when SERVICE in this container is healthy, else 1 with why (container health checks)."""
    setup_logging("ERROR", "text")  # the verdict is the output; retries while Redis is down are not
    problems = asyncio.run(health_checks.check(service, timeout_s=timeout_s, max_age_s=max_age_s))
    if problems:
        click.echo(f"{service} unhealthy: " + "; ".join(problems), err=True)
        sys.exit(1)
    click.echo(f"{service} healthy")


def main() -> None:
    """Console entry point."""
    feqa()


if __name__ == "__main__":  # python -m infra.cli, as the console script
    main()
