"""Stopping background tasks for sure: cancel, wait, and cancel again what is still running.

One ``task.cancel()`` is not always enough on Python 3.11: ``asyncio.wait_for`` returns its inner result and drops
the cancellation when the inner awaitable finishes in the same loop round as the cancel arrives (fixed in 3.12, where
``wait_for`` is built on ``asyncio.timeout``). redis-py sends every command through such a ``wait_for`` (the socket
write under its socket timeout), so a loop that talks to Redis all the time, cancelled once, can keep running: a
dashboard, ingest or worker that never finishes its shutdown, and a test whose event loop never closes (measured
before this module: in a loop of dashboard start-ups on a real Redis, each stopped at a random moment, one shutdown
in 5 to 40 left the scores consumer running). :func:`stop_tasks` cancels again, every ``recancel_s``, each task that
is still running, until all are done or ``timeout_s`` is spent, and logs the frames of any task still running then.
A task's own clean-up after the first cancel (a lease released, a connection closed) gets ``grace_s`` before it is
cancelled again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


async def stop_tasks(
    tasks: Iterable[asyncio.Future[Any]],
    *,
    timeout_s: float = 10.0,
    grace_s: float = 2.0,
    recancel_s: float = 0.2,
    what: str = "task",
) -> list[asyncio.Future[Any]]:
    """Cancel ``tasks`` and wait until each has ended, cancelling again every ``recancel_s`` those that swallowed
    the cancellation (after ``grace_s`` for their clean-up). Returns the ones still running after ``timeout_s``
    (logged with where they are); results and exceptions of the others are retrieved, never raised."""
    every = list(tasks)
    pending = {t for t in every if not t.done()}
    start = time.monotonic()
    wait = min(grace_s, timeout_s)
    while pending:
        for task in pending:
            task.cancel()
        left = start + timeout_s - time.monotonic()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(wait, left))
        wait = recancel_s
    for task in every:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the caller is stopping them, not asking how they ended
    for task in pending:
        log.warning("%s %s did not stop within %g s of being cancelled; it was at:\n%s",
                    what, _name(task), timeout_s, where(task))  # fmt: skip
    return sorted(pending, key=_name)


def where(task: asyncio.Future[Any]) -> str:
    """The chain of coroutine frames a pending task is suspended in, outermost first."""
    lines = []
    coro: Any = task.get_coro() if isinstance(task, asyncio.Task) else None
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "\n".join(lines) or f"  {task!r}"


def _name(task: asyncio.Future[Any]) -> str:
    return repr(task.get_name()) if isinstance(task, asyncio.Task) else repr(task)
