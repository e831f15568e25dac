"""The ``dashboard`` click group: ``feqa dashboard serve``, ``migrate`` / ``downgrade``, and the account commands
``create-clinic``, ``create-admin``, ``create-clinician``. There is no default password: the account commands
prompt for one (typed twice, not echoed) or, with ``--generate``, make a random one and print it once.
"""

from __future__ import annotations

from typing import Any

import click

from common.errors import FeqaError
from common.logs import setup_logging
from dashboard.accounts import clinic_by_name, create_clinic, create_user, generate_password
from dashboard.db import Database, current_revision, downgrade, head_revision
from dashboard.settings import DashboardSettings


@click.group(name="dashboard")
def cli() -> None:
    """The clinician dashboard: serve it, migrate its database, create accounts."""


def _database() -> Database:
    settings = DashboardSettings()
    setup_logging("WARNING", settings.common.log_format)
    db = Database(settings.database_url_with_password())
    db.migrate()
    return db


@cli.command("serve")
@click.option("--host", default=None, help="bind address (default FEQA_DASHBOARD_HOST)")
@click.option("--port", type=int, default=None, help="port (default FEQA_DASHBOARD_PORT)")
def serve(host: str | None, port: int | None) -> None:
    """Serve the dashboard (migrates the database first)."""
    from dashboard.server import run

    overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = DashboardSettings(**overrides)
    setup_logging(settings.common.log_level, settings.common.log_format)
    run(settings)


@cli.command("migrate")
def migrate() -> None:
    """Bring the database to the newest schema."""
    db = _database()
    click.echo(f"database at revision {current_revision(db.engine)} (newest {head_revision()})")


@cli.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="confirm: a downgrade to base deletes every table")
def downgrade_cmd(revision: str, yes: bool) -> None:
    """Migrate the database down to REVISION ('base' removes everything)."""
    if not yes:
        raise click.ClickException("a downgrade can delete data; add --yes to confirm")
    db = _database()
    downgrade(db.engine, revision)
    click.echo(f"database at revision {current_revision(db.engine)}")


@cli.command("create-clinic")
@click.argument("name")
def create_clinic_cmd(name: str) -> None:
    """Add a clinic (clinicians see only their clinic's patients)."""
    db = _database()
    try:
        with db.session() as s:
            clinic = create_clinic(s, name)
            click.echo(f"clinic {clinic.id}: {clinic.name}")
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from None


def _password(generate: bool) -> tuple[str, bool]:
    if generate:
        return generate_password(), True
    return click.prompt("password (at least 12 characters)", hide_input=True, confirmation_prompt=True), False


def _create(username: str, role: str, clinic: str | None, full_name: str, generate: bool) -> None:
    db = _database()
    password, generated = _password(generate)
    try:
        with db.session() as s:
            found = clinic_by_name(s, clinic) if clinic else None
            user = create_user(s, username, password, role, found, full_name)
            click.echo(f"{role} {user.username} created (id {user.id})")
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from None
    if generated:
        click.echo(f"password: {password}")
        click.echo("it is shown only now; it is stored as an argon2 hash and cannot be shown again")


@cli.command("create-admin")
@click.argument("username")
@click.option("--clinic", default=None, help="the clinic whose patients this admin may also see")
@click.option("--name", "full_name", default="", help="the person's name")
@click.option("--generate", is_flag=True, help="generate a password and print it once instead of prompting")
def create_admin(username: str, clinic: str | None, full_name: str, generate: bool) -> None:
    """Create an admin account (manages clinics and accounts)."""
    _create(username, "admin", clinic, full_name, generate)


@cli.command("create-clinician")
@click.argument("username")
@click.option("--clinic", required=True, help="the clinic the clinician works for")
@click.option("--name", "full_name", default="", help="the person's name")
@click.option("--generate", is_flag=True, help="generate a password and print it once instead of prompting")
def create_clinician(username: str, clinic: str, full_name: str, generate: bool) -> None:
    """Create a clinician account in a clinic."""
    _create(username, "clinician", clinic, full_name, generate)
