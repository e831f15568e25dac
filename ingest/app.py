"""The ingest FastAPI app factory: routes, the patient page, error mapping, and the lifespan that owns the bus,
the peer registry (every peer and job closed on shutdown) and the background loops: renewing this process's ingest
leases (a session whose lease was lost is closed here) and sweeping sessions whose ingest died (common.liveness).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from common.bus import Bus
from common.errors import BusUnavailable
from common.liveness import sweep
from common.logs import session_logger
from common.protocols import UnknownProtocol
from ingest import api, upload
from ingest.recorded import VideoFileError
from ingest.registry import CapacityError
from ingest.sdp import OfferError
from ingest.settings import IngestSettings
from ingest.state import IngestState
from ingest.tokens import TokenError

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")


def create_app(settings: IngestSettings, bus: Bus | None = None) -> FastAPI:
    """A new app. With ``bus`` given the caller owns it; otherwise the app connects and closes its own."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_bus = bus is None
        active = bus or await Bus.from_settings(settings.common, name="ingest")
        state = IngestState(settings, active)
        app.state.ingest = state
        loops = [asyncio.ensure_future(_keep_leases(state)), asyncio.ensure_future(_sweep(state)),
                 asyncio.ensure_future(state.health.run())]  # fmt: skip
        log.info("ingest %s ready; patient links at %s/join/<token>", state.instance, settings.join_base())
        try:
            yield
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await state.registry.close_all("shutdown")
            if own_bus:
                await active.close()

    app = FastAPI(title="feqa ingest", lifespan=lifespan)
    app.include_router(api.router)
    app.include_router(upload.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/join/{token}", include_in_schema=False)
    async def patient_page(token: str) -> FileResponse:
        return FileResponse(
            STATIC / "index.html", headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        )

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> dict[str, int]:
        state: IngestState = request.app.state.ingest
        return {"sessions": len(state.registry)}

    def handler(status: int | None = None) -> object:
        async def handle(request: Request, exc: Exception) -> JSONResponse:
            code = status if status is not None else int(getattr(exc, "status", 400))
            return JSONResponse({"detail": str(exc)}, status_code=code)

        return handle

    app.add_exception_handler(TokenError, handler())  # type: ignore[arg-type]
    app.add_exception_handler(OfferError, handler(400))  # type: ignore[arg-type]
    app.add_exception_handler(UnknownProtocol, handler(400))  # type: ignore[arg-type]
    app.add_exception_handler(VideoFileError, handler(422))  # type: ignore[arg-type]
    app.add_exception_handler(CapacityError, handler(503))  # type: ignore[arg-type]
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
