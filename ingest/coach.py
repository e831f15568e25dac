"""Coaching messages from the pipeline (``coach:{sid}``: face not found, too dark, face the camera) to the page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from common.bus import Bus
from common.messages import Event
from common.streams import COACH

log = logging.getLogger(__name__)


async def relay_coaching(
    bus: Bus,
    sid: str,
    send: Callable[[dict[str, Any]], Awaitable[None]],
    receive: Callable[[], Awaitable[str]],
    *,
    block_ms: int = 500,
) -> None:
    """Forward new coach events to ``send`` until the peer side closes (``receive`` raises or returns).

    The Redis read in flight is never cancelled: a cancelled blocking XREAD was seen to leave its task pending for
    good, which held the server's shutdown (and a task per closed socket). Once the page has gone, the reader stops
    at its next return (at most ``block_ms`` later); only a reader that has not stopped by then is cancelled."""
    latest = await bus.latest(COACH, sid, 1)
    cursor = latest[-1].id if latest else "0-0"
    closed = asyncio.Event()

    async def forward() -> None:
        nonlocal cursor
        while not closed.is_set():
            for delivery in await bus.tail({(COACH, sid): cursor}, count=50, block_ms=block_ms):
                cursor = delivery.id
                message = delivery.message
                if isinstance(message, Event) and message.type == "coach" and not closed.is_set():
                    await send({"type": "coach", "text": message.text, "ts": message.ts})

    async def drain() -> None:
        while True:
            await receive()

    reader, listener = asyncio.ensure_future(forward()), asyncio.ensure_future(drain())
    try:
        done, _ = await asyncio.wait((reader, listener), return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None and not _is_disconnect(exc):
                log.warning("coach relay for %s stopped: %r", sid, exc)
    finally:
        closed.set()
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener
        await asyncio.wait((reader,), timeout=block_ms / 1000 + 2.0)
        if not reader.done():
            reader.cancel()
            await asyncio.wait((reader,), timeout=1.0)
        if reader.done() and not reader.cancelled():
            reader.exception()  # retrieved: already logged above when it ended the relay


def _is_disconnect(exc: BaseException) -> bool:
    return type(exc).__name__ in {"WebSocketDisconnect", "ConnectionClosed", "ClientDisconnected"}
