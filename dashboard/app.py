"""The dashboard FastAPI app factory: routes, static pages, error mapping, and the lifespan that migrates the
database and runs the live hub, the scores consumer and the health board (all stopped on shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from common.bus import Bus
from common.errors import PermanentError, RetryableError
from common.protocols import UnknownProtocol
from common.tasks import stop_tasks
from dashboard import admin_api, audit, auth_routes, live, pages, patients_api, sessions_api
from dashboard.access import Denied, NotLoggedIn
from dashboard.consumer import ScoreConsumer
from dashboard.db import Database
from dashboard.health import HealthBoard
from dashboard.hub import Hub
from dashboard.ingest_client import IngestClient, IngestRefused, IngestUnavailable
from dashboard.settings import DashboardSettings
from dashboard.state import DashboardState

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
}


HEALTH_TIMEOUT_S = 2.0


async def _ping_database(db: Database) -> None:
    def ping() -> None:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    await asyncio.to_thread(ping)


def create_app(settings: DashboardSettings, bus: Bus | None = None, *, background: bool = True) -> FastAPI:
    """A new app. With ``bus`` given the caller owns it. ``background=False`` leaves the consumer and health board
    off (tests that drive them step by step)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url_with_password())
        await asyncio.to_thread(db.migrate)
        own_bus = bus is None
        active = bus or await Bus.connect(settings.common.redis_url, name="dashboard")
        # read no more per round than half a client queue holds, so a client that keeps up never overflows
        hub = Hub(active, replay_max=settings.replay_max, count=max(1, min(500, settings.ws_queue // 2)))
        consumer = ScoreConsumer(
            active,
            db,
            settings.instance,
            drain_after_end_s=settings.drain_after_end_s,
            reclaim_idle_ms=settings.reclaim_idle_ms,
        )
        ingest = IngestClient(settings.ingest_url, settings.ingest_key(), settings.ingest_timeout_s)
        board = HealthBoard(active, hub, instance=settings.instance, interval_s=settings.health_interval_s)
        state = DashboardState(settings, db, active, hub, board, consumer, ingest)
        board.own = state.own_health
        app.state.dash = state
        tasks = [asyncio.create_task(hub.run(), name="live hub")]
        if background:
            tasks += [asyncio.create_task(consumer.run(), name="scores consumer"),
                      asyncio.create_task(board.run(), name="health board")]  # fmt: skip
        log.info(
            "dashboard ready on %s:%d (database %s)", settings.host, settings.port, db.engine.url.render_as_string()
        )
        try:
            yield
        finally:
            # bounded: a task that does not let go is logged with where it is, never waited on forever
            await stop_tasks(tasks, what="background task")
            if own_bus:
                try:
                    await asyncio.wait_for(active.close(), 5)
                except TimeoutError:
                    log.warning("closing the Redis connection took longer than 5 s; left to the process exit")
            db.close()

    app = FastAPI(title="feqa dashboard", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    for module in (auth_routes, pages, patients_api, sessions_api, admin_api, live):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: object) -> Response:
        response: Response = await call_next(request)  # type: ignore[operator]
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    async def not_logged_in(request: Request, exc: Exception) -> Response:
        reason = exc.reason if isinstance(exc, NotLoggedIn) else "please log in"
        return RedirectResponse(f"/login?reason={quote(reason)}", status_code=303)

    def handler(status: int) -> object:
        async def handle(request: Request, exc: Exception) -> JSONResponse:
            code = int(getattr(exc, "status", status))
            return JSONResponse({"detail": str(exc)}, status_code=code)

        return handle

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        """Liveness for container health checks (no login): the database and Redis answer within 2 s."""
        state: DashboardState = request.app.state.dash
        checks = {"database": _ping_database(state.db), "redis": state.bus.ping()}
        out: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check, HEALTH_TIMEOUT_S)
                out[name] = "ok"
            except Exception as exc:  # every failure is an unhealthy answer, never a 500
                out[name] = f"failing: {type(exc).__name__}"
        healthy = all(v == "ok" for v in out.values())
        return JSONResponse({"ok": healthy, **out}, status_code=200 if healthy else 503)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        """422 with where and why, never the input itself (it may be huge, private, or not even JSON-encodable:
        a body of ``Infinity`` made FastAPI's own handler fail with a 500)."""
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        detail = [{"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", ""))[:300],
                   "type": str(e.get("type", ""))} for e in errors[:20]]  # fmt: skip
        return JSONResponse({"detail": detail}, status_code=422)

    app.add_exception_handler(RequestValidationError, invalid_request)

    async def denied(request: Request, exc: Exception) -> Response:
        if isinstance(exc, Denied):
            state: DashboardState = request.app.state.dash

            def write() -> None:
                with state.db.session() as db:
                    audit.record(
                        db,
                        exc.caller,
                        "access_" + request.method.lower(),
                        exc.target_type,
                        exc.target_id,
                        outcome="refused",
                        detail=request.url.path,
                    )

            await run_in_threadpool(write)
        return JSONResponse({"detail": getattr(exc, "detail", "not found")}, status_code=404)

    app.add_exception_handler(NotLoggedIn, not_logged_in)
    app.add_exception_handler(Denied, denied)
    app.add_exception_handler(UnknownProtocol, handler(400))  # type: ignore[arg-type]
    app.add_exception_handler(IngestUnavailable, handler(503))  # type: ignore[arg-type]
    app.add_exception_handler(IngestRefused, handler(502))  # type: ignore[arg-type]
    app.add_exception_handler(PermanentError, handler(400))  # type: ignore[arg-type]
    app.add_exception_handler(RetryableError, handler(503))  # type: ignore[arg-type]
    return app
