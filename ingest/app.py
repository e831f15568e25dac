"""The ingest FastAPI app factory: routes, the patient page, a small page at ``/`` saying what this server is,
error mapping (ingest.errors), the perimeter every request passes (ingest.perimeter: Host check, body caps,
security headers), and the lifespan that owns the bus, the peer registry (every peer and job closed on shutdown)
and the background loops: renewing this process's ingest leases (a session whose lease was lost is closed here) and
sweeping sessions whose ingest died (common.liveness).

No API docs UI is served (it would load from a CDN); ``api_docs`` turns on the OpenAPI schema at /openapi.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from common.bus import Bus
from common.errors import BusUnavailable
from common.liveness import sweep
from common.logs import session_logger
from common.tasks import stop_tasks
from ingest import api, errors, page_api, upload
from ingest.perimeter import Perimeter, allowed_hosts
from ingest.settings import IngestSettings
from ingest.state import IngestState

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")


def create_app(settings: IngestSettings, bus: Bus | None = None) -> FastAPI:
    """A new app. With ``bus`` given the caller owns it; otherwise the app connects and closes its own.

    The app refuses to start without a service credential (IngestSettings.require_credential)."""
    settings.require_credential()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_bus = bus is None
        active = bus or await Bus.from_settings(settings.common, name="ingest")
        state = IngestState(settings, active)
        app.state.ingest = state
        loops = [asyncio.create_task(_keep_leases(state), name="ingest leases"),
                 asyncio.create_task(_sweep(state), name="ingest sweep"),
                 asyncio.create_task(state.health.run(), name="ingest health")]  # fmt: skip
        log.info("ingest %s ready; patient links at %s/join/<token>", state.instance, settings.join_base())
        try:
            yield
        finally:
            await stop_tasks(loops, what="background task")
            await state.registry.close_all("shutdown")
            if own_bus:
                await active.close()

    docs = settings.api_docs
    app = FastAPI(title="feqa ingest", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json" if docs else None)  # fmt: skip
    app.include_router(api.router)
    app.include_router(page_api.router)
    app.include_router(upload.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    errors.install(app)
    hosts = allowed_hosts(settings.allowed_hosts, settings.public_url, settings.host)
    limits = {"json_limit": settings.max_json_bytes, "offer_limit": settings.max_sdp_bytes + 4096,
              "upload_limit": settings.max_upload_bytes}  # fmt: skip
    app.add_middleware(Perimeter, hosts=hosts, **limits)

    @app.get("/join/{token}", include_in_schema=False)
    async def patient_page(token: str) -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/", include_in_schema=False)
    async def root() -> FileResponse:
        return FileResponse(STATIC / "about.html")

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> dict[str, int]:
        state: IngestState = request.app.state.ingest
        return {"sessions": len(state.registry)}

    return app


async def _keep_leases(state: IngestState) -> None:
    """Renew this process's ingest leases; close the peer of a session whose lease was lost (we stalled)."""
    while True:
        await asyncio.sleep(state.liveness.renew_every_s)
        try:
            lost = await state.liveness.renew()
        except BusUnavailable as exc:
            log.error("cannot renew ingest leases: %s", exc)
            continue
        for sid in lost:
            peer = state.registry.get(sid)
            if peer is not None:
                session_logger(log, sid).warning("closing: another process may have ended this session")
                peer.request_close("ingest_lost")


async def _sweep(state: IngestState) -> None:
    """End sessions whose ingest died (any ingest and any tracker sweeps; the first end wins)."""
    while True:
        await asyncio.sleep(state.settings.sweep_every_s)
        try:
            await sweep(state.store)
        except BusUnavailable as exc:
            log.error("cannot sweep sessions: %s", exc)
