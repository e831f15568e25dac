"""Per-client rate limits (token buckets) on the calls that cost the service work or guess at secrets: session
creation, uploads and join-link attempts.

A client is its remote address. Each (action, client) has a bucket holding up to ``burst`` calls (default half a
minute's allowance) that refills at ``per_min / 60`` calls a second; a call finding it empty gets 429 with
``Retry-After``. The table of buckets is bounded (the least recently used client is forgotten first), so a flood
of addresses costs bounded memory. Limits are per ingest process: behind several processes a client gets each
process's allowance.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable

from common.errors import PermanentError


class RateLimited(PermanentError):
    """Too many calls from one client; ``retry_after_s`` says when the next one is allowed."""

    status = 429

    def __init__(self, what: str, retry_after_s: float) -> None:
        wait = max(1, math.ceil(retry_after_s))
        super().__init__(f"too many {what} from this address; try again in {wait} s")
        self.retry_after_s = wait


class RateLimiter:
    """Token buckets keyed by (action, client), at most ``max_clients`` of them."""

    def __init__(self, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: collections.OrderedDict[tuple[str, str], tuple[float, float]] = collections.OrderedDict()
        self._max = max_clients
        self._clock = clock

    def hit(self, action: str, client: str, per_min: float, burst: float | None = None, what: str = "") -> None:
        """Count one call; raise :class:`RateLimited` when the client's bucket is empty."""
        capacity = max(1.0, burst if burst is not None else per_min / 2)
        rate = per_min / 60.0
        now = self._clock()
        key = (action, client)
        tokens, last = self._buckets.pop(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimited(what or action, (1.0 - tokens) / rate)
        self._buckets[key] = (tokens - 1.0, now)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)
