"""What every request passes before a route sees it: the Host check, request body caps, and security headers.

- Host: only the names this ingest is reached by (the public URL's host, the bind address, localhost; or the
  ``allowed_hosts`` setting, where ``*`` turns the check off) are served, so a page on another site cannot reach
  the API through DNS rebinding.
- Bodies: a declared ``Content-Length`` over the route's cap is refused (413) before any byte is read; a body without
  one is read up to the cap and refused when it passes it, so no request makes the service hold more than the cap.
  JSON routes get ``max_json_bytes``, SDP offers ``max_sdp_bytes`` (plus the JSON around it); uploads are streamed
  to disk by their route, which cuts them at ``max_upload_bytes``. A body that trickles in slower than the read
  deadline is refused (408).
- Headers: every response says ``nosniff``, ``no-referrer``, may not be framed, and carries a Content-Security-Policy
  without inline script; API answers are never cached (they name patients and sessions).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob: "
    "mediastream:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=(), payment=()"),
)
NO_STORE = (b"cache-control", b"no-store")
UPLOAD_PATH = "/api/uploads"
UPLOAD_OVERHEAD = 65_536  # multipart boundaries and form fields around the file


def allowed_hosts(configured: list[str], public_url: str, bind_host: str) -> frozenset[str]:
    """The Host names served: ``configured`` when given, else the public URL's host, the bind host and loopback."""
    if configured:
        return frozenset(h.strip().lower() for h in configured if h.strip())
    names = {"localhost", "127.0.0.1", "::1"}
    if public_url:
        names.add((urlsplit(public_url).hostname or "").lower())
    if bind_host not in ("", "0.0.0.0", "::"):
        names.add(bind_host.lower())
    return frozenset(n for n in names if n)


def host_name(value: str) -> str:
    """The name part of a Host header (``[::1]:8000`` -> ``::1``, ``Example.org:80`` -> ``example.org``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


class Perimeter:
    """ASGI middleware: Host check, body caps, security headers (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: frozenset[str],
        json_limit: int,
        offer_limit: int,
        upload_limit: int,
        read_timeout_s: float = 10.0,
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.json_limit = json_limit
        self.offer_limit = offer_limit
        self.upload_limit = upload_limit
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if "*" not in self.hosts and host_name(headers.get(b"host", b"").decode("latin-1")) not in self.hosts:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4400, "reason": "unknown Host header"})
                return
            await _answer(send, 400, "this server does not serve that Host name; use the address from your link")
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        api = path.startswith("/api/")

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [*SECURITY_HEADERS, NO_STORE] if api else list(SECURITY_HEADERS)
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        limit = self.upload_limit if path == UPLOAD_PATH else self.offer_limit if path.endswith("/offer") else None
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _answer(send_guarded, 400, "the Content-Length header is not a number")
                return
            if path == UPLOAD_PATH and int(declared) > self.upload_limit + UPLOAD_OVERHEAD:
                await _answer(send_guarded, 413, f"the upload is larger than the limit of {self.upload_limit} bytes")
                return
            cap = limit or self.json_limit
            if path != UPLOAD_PATH and int(declared) > cap:
                await _answer(send_guarded, 413, f"the request body is larger than the limit of {cap} bytes")
                return
        if path == UPLOAD_PATH:  # streamed by the route, which counts and cuts it
            await self.app(scope, receive, send_guarded)
            return
        cap = limit or self.json_limit
        try:
            async with asyncio.timeout(self.read_timeout_s):
                body, more = await _read_capped(receive, cap)
        except TimeoutError:
            await _answer(send_guarded, 408, f"the request body did not arrive within {self.read_timeout_s:g} s")
            return
        if more is None:  # the client went away while sending
            return
        if more:
            await _answer(send_guarded, 413, f"the request body is larger than the limit of {cap} bytes")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_guarded)


async def _read_capped(receive: Receive, cap: int) -> tuple[bytes, bool | None]:
    """The whole body if it fits in ``cap`` (False), or (prefix, True) when it does not; None: disconnected."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            return b"", True
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts), False


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status in (408, 413):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
