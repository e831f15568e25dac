"""The ``ingest`` click group: ``feqa ingest FILE --protocol pfed5 --task smile`` feeds a recorded video to the
streams; ``feqa ingest new-session`` asks the running ingest for a patient link (with the service key);
``feqa ingest serve`` runs the service; ``feqa ingest protocols`` lists the guided protocols.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import click
import httpx

from common.bus import Bus
from common.errors import FeqaError
from common.liveness import IngestLiveness
from common.logs import setup_logging
from common.messages import Consent
from common.protocols import PROTOCOLS, get_protocol
from common.session_store import Retention
from common.tasks import stop_tasks
from ingest.auth import ServiceKey
from ingest.recorded import FileResult, Pace, ingest_file, probe
from ingest.server import run
from ingest.sessions import IngestSessions
from ingest.settings import IngestSettings


class _FileByDefault(click.Group):
    """A group whose first argument, when it is not a command name, is a video file for the ``file`` command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["file", *args]
        return super().parse_args(ctx, args)


@click.group(name="ingest", cls=_FileByDefault)
def cli() -> None:
    """Patient video in: WebRTC sessions, guided protocols, recorded files."""


@cli.command("serve")
@click.option("--host", default=None, help="bind address (default FEQA_INGEST_HOST)")
@click.option("--port", type=int, default=None, help="port (default FEQA_INGEST_PORT)")
def serve(host: str | None, port: int | None) -> None:
    """Serve the patient page and the session API."""
    overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = IngestSettings(**overrides)
    setup_logging(settings.common.log_level, settings.common.log_format)
    run(settings)


@cli.command("file")
@click.argument("video", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--protocol", required=True, type=click.Choice(sorted(PROTOCOLS)), help="protocol of the recording")
@click.option("--task", default="", help="the task performed in the clip (task_start/task_end events)")
@click.option("--patient-id", default="", help="patient id (default: the file name)")
@click.option("--pace", type=click.Choice(["native", "fast"]), default="native", show_default=True,
              help="native: real time; fast: as fast as the tracker reads")  # fmt: skip
@click.option("--live-scoring/--no-live-scoring", default=True, show_default=True,
              help="whether the patient consented to scoring by the models")  # fmt: skip
def ingest_video(video: Path, protocol: str, task: str, patient_id: str, pace: str, live_scoring: bool) -> None:
    """Feed a recorded VIDEO to the streams as a session of its own."""
    settings = IngestSettings()
    setup_logging(settings.common.log_level, settings.common.log_format)
    try:
        if task:
            get_protocol(protocol).task(task)
        info = probe(video, settings.min_upload_frames)
        consent = Consent(live_scoring=live_scoring)
        mode: Pace = "fast" if pace == "fast" else "native"
        result = asyncio.run(_ingest(settings, video, protocol, task, patient_id, mode, consent))
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"session {result.sid}: {result.frames} frames ({info.width}x{info.height} @ {info.fps:g} fps), {result.reason}"
    )
    if result.error:
        raise click.ClickException(result.error)


async def _ingest(
    settings: IngestSettings, video: Path, protocol: str, task: str, patient_id: str, pace: Pace, consent: Consent
) -> FileResult:
    bus = await Bus.from_settings(settings.common, name="ingest-file")
    liveness = IngestLiveness(bus, settings.instance or f"ingest-file-{os.getpid()}", settings.lease_ttl_ms)
    renew = asyncio.ensure_future(liveness.run())
    try:
        sessions = IngestSessions(bus, Retention.from_settings(settings.common), liveness, settings.end_drain_s)
        return await ingest_file(bus, sessions, settings, video, protocol=protocol, task=task,
                                 patient_id=patient_id, pace=pace, consent=consent)  # fmt: skip
    finally:
        await stop_tasks([renew], what="lease renewal")
        await bus.close()


@cli.command("new-session")
@click.option("--protocol", required=True, type=click.Choice(sorted(PROTOCOLS)), help="guided protocol")
@click.option("--patient-id", required=True, help="pseudonymous patient reference (letters, digits, . _ -)")
@click.option("--no-live-scoring", is_flag=True, help="the patient refused scoring by the models")
@click.option("--recording", is_flag=True, help="the patient agreed to the video being kept")
@click.option("--research", is_flag=True, help="the patient agreed to research use of the results")
def new_session(protocol: str, patient_id: str, no_live_scoring: bool, recording: bool, research: bool) -> None:
    """Create a session on the running ingest and print the patient's link."""
    settings = IngestSettings()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = f"http://{host}:{settings.port}"
    try:
        settings.require_credential()
        key = ServiceKey(settings.api_key.get_secret_value() if settings.api_key else None,
                         None if settings.api_key else settings.api_key_file).current()  # fmt: skip
    except FeqaError as exc:
        raise click.ClickException(f"{exc} (is feqa up running?)") from None
    consent = {"live_scoring": not no_live_scoring, "recording": recording, "research": research}
    body = {"patient_id": patient_id, "protocol": protocol, "consent": consent}
    try:
        res = httpx.post(f"{base}/api/sessions", json=body, headers={"X-Api-Key": key}, timeout=10)
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"the ingest at {base} did not answer ({type(exc).__name__}); is it running?"
        ) from None
    if res.status_code != 201:
        try:
            detail = res.json().get("detail", res.text)
        except ValueError:
            detail = res.text[:200]
        raise click.ClickException(f"the ingest refused the session ({res.status_code}): {detail}")
    made = res.json()
    minutes = max(1, round((made["expires_at"] - time.time()) / 60))
    click.echo(f"session {made['sid']} for patient {patient_id} ({protocol})")
    click.echo(f"patient link (open it within {minutes} min; it works for this session only):")
    click.echo(f"  {made['join_url']}")
    click.echo(f"follow it with: feqa watch {made['sid']}")


@cli.command("protocols")
def protocols() -> None:
    """List the guided protocols and their tasks."""
    for proto in PROTOCOLS.values():
        scale = proto.scale
        click.echo(f"{proto.name}: {proto.title} (scale {scale.label}: {scale.anchors[0]} .. {scale.anchors[-1]})")
        for task in proto.tasks:
            click.echo(f"  {task.name:<20} x{task.reps} {task.hold_s:g} s  {task.prompt}")
