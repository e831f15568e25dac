"""Bounded retries for Redis calls: socket timeouts, exponential backoff, one budget per call.

Connects give up after ``Timeouts.connect_s`` and every reply must come within ``Timeouts.read_s``, so a half-open
socket (the peer vanished without FIN or RST) raises instead of hanging; a blocking read must block for less than
``read_s``. Each attempt of a call runs inside what is left of the budget (``Backoff.budget_s``; the first one is
left to its socket timeouts when those end it inside the budget anyway), retries back off exponentially up to
``cap_s``, and the call raises :class:`~common.errors.BusUnavailable` once the budget is spent: no call outlives
its budget, however the network fails.

A call whose reply was lost is sent again, so a write may be applied twice: consumers that count entries
de-duplicate them by their natural key (common.dedupe).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.errors import BusUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# The budget's own timeout is a TimeoutError, an OSError: it is caught, and the budget check then gives up.
TRANSIENT = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Bounded exponential backoff for reconnects."""

    first_s: float = 0.05
    cap_s: float = 2.0
    budget_s: float = 30.0


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Socket timeouts: TCP connect, and the wait for each reply."""

    connect_s: float = 2.0
    read_s: float = 5.0


def redis_client(url: str, name: str, timeouts: Timeouts) -> aioredis.Redis:
    """A redis-py client with the socket timeouts and no retries of its own (ours are budgeted)."""
    return aioredis.Redis.from_url(url, decode_responses=False, socket_connect_timeout=timeouts.connect_s,
                                   socket_timeout=timeouts.read_s, health_check_interval=0,
                                   retry=Retry(NoBackoff(), 0), client_name=name)  # fmt: skip


def first_attempt_fits(backoff: Backoff, timeouts: Timeouts) -> bool:
    """Whether the socket timeouts alone end a first attempt (a connect, a write, a reply) inside the budget, so it
    needs no timer of its own (which keeps the common case, a call that just works, cheap)."""
    return timeouts.connect_s + 2 * timeouts.read_s < backoff.budget_s


async def with_retry(
    what: str,
    op: Callable[[], Awaitable[T]],
    backoff: Backoff,
    on_retry: Callable[[], None],
    *,
    started: float | None = None,
    failed: BaseException | None = None,
) -> T:
    """Run ``op`` until it succeeds, retrying transient failures within ``backoff.budget_s`` (counted from
    ``started``; ``failed``: a first attempt already made outside, and how it failed). Every attempt runs under what
    is left of the budget."""
    deadline = (time.monotonic() if started is None else started) + backoff.budget_s
    delay = backoff.first_s
    exc = failed
    while True:
        if exc is not None:
            if time.monotonic() + delay > deadline:
                raise BusUnavailable(
                    f"Redis unreachable for {backoff.budget_s:g} s during {what}: {exc!r}; "
                    "check FEQA_REDIS_URL and that the server is running"
                ) from exc
            on_retry()
            log.warning("redis unavailable during %s (%r); retrying in %.2f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff.cap_s)
        try:
            async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                return await op()
        except TRANSIENT as caught:
            exc = caught
