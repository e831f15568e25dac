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
    """Forward new coach events to ``send`` until the peer side closes (``receive`` raises or returns)."""
    latest = await bus.latest(COACH, sid, 1)
    cursor = latest[-1].id if latest else "0-0"

    async def forward() -> None:
        nonlocal cursor
        while True:
            for delivery in await bus.tail({(COACH, sid): cursor}, count=50, block_ms=block_ms):
                cursor = delivery.id
                message = delivery.message
                if isinstance(message, Event) and message.type == "coach":
                    await send({"type": "coach", "text": message.text, "ts": message.ts})

    async def drain() -> None:
        while True:
            await receive()

    tasks = [asyncio.ensure_future(forward()), asyncio.ensure_future(drain())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None and not _is_disconnect(exc):
                log.warning("coach relay for %s stopped: %r", sid, exc)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _is_disconnect(exc: BaseException) -> bool:
    return type(exc).__name__ in {"WebSocketDisconnect", "ConnectionClosed", "ClientDisconnected"}
