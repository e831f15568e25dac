"""How the ingest answers errors: a JSON ``{"detail": ...}`` with a 4xx that says what to change, or a 503 that
says when to retry; never a traceback, and never more of the caller's input than a short prefix.

Validation errors name the field and the rule (``body.patient_id: String should have at most 64 characters``)
without the rejected value; every detail is cut to :data:`MAX_DETAIL` characters. An unexpected exception is
logged with its traceback here and answered 500 with a generic message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import OutOfMemoryError
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import BusUnavailable, DecodeError
from common.protocols import UnknownProtocol
from ingest.phantom_spec import PhantomRefused
from ingest.ratelimit import RateLimited
from ingest.recorded import VideoFileError
from ingest.registry import CapacityError
from ingest.sdp import OfferError
from ingest.tokens import TokenError

log = logging.getLogger(__name__)

MAX_DETAIL = 300
ECHO_CHARS = 40


def clip(text: object, limit: int = ECHO_CHARS) -> str:
    """``text`` as it may appear in an error: at most ``limit`` characters (the last three an ellipsis when cut)."""
    s = str(text)
    return s if len(s) <= limit else s[: max(0, limit - 3)] + "..."


def _json(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": clip(detail, MAX_DETAIL)}, status_code=status, headers=headers)


def validation_detail(exc: RequestValidationError) -> str:
    """One line per problem: where and which rule, without the rejected input."""
    parts = []
    for err in list(exc.errors())[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{clip(loc, 60)}: {clip(err.get('msg', 'invalid'), 120)}")
    return "invalid request: " + "; ".join(parts)


Handler = Callable[[Request, Any], Awaitable[JSONResponse]]


def install(app: FastAPI) -> None:
    """Register every error mapping on ``app``."""

    def fixed(status: int) -> Handler:
        async def handle(_request: Request, exc: Exception) -> JSONResponse:
            return _json(status, str(exc))

        return handle

    async def own_status(_request: Request, exc: TokenError | PhantomRefused) -> JSONResponse:
        return _json(exc.status, str(exc))

    async def limited(_request: Request, exc: RateLimited) -> JSONResponse:
        return _json(429, str(exc), {"Retry-After": str(exc.retry_after_s)})

    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _json(422, validation_detail(exc))

    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _json(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def redis_full(_request: Request, exc: OutOfMemoryError) -> JSONResponse:
        log.error("redis refused a write: it is at its memory limit (%s)", exc)
        return _json(503, "the server's stream store is full; try again in a minute", {"Retry-After": "30"})

    async def unavailable(_request: Request, exc: BusUnavailable) -> JSONResponse:
        log.error("%s", exc)
        return _json(503, "the server's stream store is unreachable; try again shortly", {"Retry-After": "5"})

    async def broken_state(_request: Request, exc: DecodeError) -> JSONResponse:
        log.error("unreadable session state: %s", exc)
        return _json(409, "this session's stored state is unreadable; start a new session")

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, clip(request.url.path, 80), exc_info=exc)
        return _json(500, "internal error; the ingest logged the details")

    handlers: list[tuple[type[Exception], Handler]] = [
        (TokenError, own_status),
        (PhantomRefused, own_status),
        (RateLimited, limited),
        (OfferError, fixed(400)),
        (UnknownProtocol, fixed(400)),
        (VideoFileError, fixed(422)),
        (CapacityError, fixed(503)),
        (RequestValidationError, invalid),
        (StarletteHTTPException, http_error),
        (OutOfMemoryError, redis_full),
        (BusUnavailable, unavailable),
        (DecodeError, broken_state),
        (Exception, unexpected),
    ]
    for exc_type, handler in handlers:
        app.add_exception_handler(exc_type, handler)
