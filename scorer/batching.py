"""Micro-batching across sessions: requests for the same graph wait at most ``max_wait_s`` (or until ``max_batch``
rows are pending) and run as one batch, so a busy CPU or a GPU serves many sessions with few calls.

A request carries any number of rows (the first axis of every feed: one window, or the new frames of a window).
Batches never split a request; one larger than ``max_batch`` runs on its own.

Graph calls run on a pool of ``workers`` threads (ONNX Runtime and numpy release the GIL inside a call), so the event
loop stays free to read and publish while batches run, and on a CPU with several cores several calls run at once.
A batch is only cut when a thread is free to run it: requests arriving meanwhile join the pending ones instead of
queueing behind a batch that is already fixed. Batches of one key start in the order their requests came.

``spread`` (for the CPU, where a call costs about the same per row at any batch size): the requests that are due
are shared out over the free threads (ceil(rows / free threads) rows each, never splitting a request) instead of
filling one call, so 16 windows on 2 free threads become 2 calls of 8 running at once, not one call of 16 leaving a
core idle. Without it (a GPU: one big call beats several small ones) a batch takes up to ``max_batch`` rows.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import logging
import math
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Array = npt.NDArray[Any]
Feeds = dict[str, Array]
RunFn = Callable[[Feeds], Feeds]
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


@dataclasses.dataclass
class _Pending:
    feeds: Feeds
    rows: int
    future: asyncio.Future[Feeds]
    due: float  # loop time by which it runs whether or not its batch is full
    order: int  # arrival order across keys


@dataclasses.dataclass
class BatchStats:
    """Counts of graph calls and the rows they carried, per batch-size bucket (``le_<n>``: at most n rows)."""

    calls: int = 0
    rows: int = 0
    requests: int = 0
    sizes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def record(self, rows: int, requests: int) -> None:
        self.calls += 1
        self.rows += rows
        self.requests += requests
        bucket = next((f"le_{b}" for b in SIZE_BUCKETS if rows <= b), f"gt_{SIZE_BUCKETS[-1]}")
        self.sizes[bucket] += 1


class MicroBatcher:
    """Collects requests per key (one key per loaded graph) and runs them in batches on a pool of threads."""

    def __init__(self, max_batch: int, max_wait_s: float, *, workers: int = 1, spread: bool = False) -> None:
        if max_batch < 1 or max_wait_s < 0 or workers < 1:
            raise ValueError(f"max_batch and workers must be >= 1 and max_wait_s >= 0, got {max_batch}, "
                             f"{workers}, {max_wait_s}")  # fmt: skip
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.workers = workers
        self.spread = spread
        self._pending: dict[Hashable, collections.deque[_Pending]] = {}
        self._kinds: dict[Hashable, str] = {}
        self._fns: dict[Hashable, RunFn] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._busy = 0  # calls running on the pool
        self._arrivals = 0
        self._closed = False
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scorer-batch")
        self.stats: dict[str, BatchStats] = collections.defaultdict(BatchStats)

    @property
    def busy(self) -> int:
        """Graph calls running now."""
        return self._busy

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, key: Hashable, fn: RunFn, feeds: Feeds, kind: str = "graph") -> Feeds:
        """Run ``fn`` on ``feeds`` within a batch of other requests for ``key``; the outputs for these rows."""
        rows = {int(v.shape[0]) for v in feeds.values()}
        if len(rows) != 1:
            raise ValueError(f"every feed needs the same number of rows, got {sorted(rows)}")
        loop = asyncio.get_running_loop()
        self._arrivals += 1
        item = _Pending(feeds, rows.pop(), loop.create_future(), loop.time() + self.max_wait_s, self._arrivals)
        self._fns[key] = fn
        self._kinds[key] = kind
        self._pending.setdefault(key, collections.deque()).append(item)
        self._dispatch()
        return await item.future

    # ------------------------------------------------------------------------------------------ scheduling

    def _due(self, queue: collections.deque[_Pending], now: float) -> bool:
        return queue[0].due <= now or sum(p.rows for p in queue) >= self.max_batch

    def _dispatch(self) -> None:
        """Start batches while threads are free and some key's requests are due; then wake up at the next due."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._busy < self.workers:
            ready = [(q[0].order, key) for key, q in self._pending.items() if q and self._due(q, now)]
            if not ready:
                break
            _, key = min(ready, key=lambda r: r[0])  # the key whose oldest request came first
            self._launch(key, self._take(self._pending[key], now))
        for key in [k for k, q in self._pending.items() if not q]:
            del self._pending[key]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy < self.workers and self._pending:  # otherwise the next finished call dispatches
            wake = min(q[0].due for q in self._pending.values())
            self._timer = loop.call_at(wake, self._dispatch)

    def _take(self, queue: collections.deque[_Pending], now: float) -> list[_Pending]:
        """The next batch of a due queue: whole requests, oldest first, up to the row limit."""
        limit = self.max_batch
        if self.spread:
            free = self.workers - self._busy
            limit = min(limit, max(1, math.ceil(sum(p.rows for p in queue) / free)))
        take = [queue.popleft()]
        rows = take[0].rows
        while queue and rows + queue[0].rows <= limit:
            rows += queue[0].rows
            take.append(queue.popleft())
        return take

    def _launch(self, key: Hashable, items: list[_Pending]) -> None:
        fn = self._fns[key]
        names = list(items[0].feeds)
        feeds = {n: np.concatenate([p.feeds[n] for p in items]) if len(items) > 1 else items[0].feeds[n] for n in names}
        self.stats[self._kinds[key]].record(sum(p.rows for p in items), len(items))
        loop = asyncio.get_running_loop()
        self._busy += 1
        done = loop.run_in_executor(self._pool, fn, feeds)

        def deliver(fut: asyncio.Future[Feeds]) -> None:
            self._busy -= 1
            try:
                out = fut.result()
            except BaseException as exc:  # the graph failed: every request of the batch gets the error
                for p in items:
                    if not p.future.done():
                        p.future.set_exception(exc)
            else:
                start = 0
                for p in items:
                    part = {k: v[start : start + p.rows] for k, v in out.items()}
                    start += p.rows
                    if not p.future.done():
                        p.future.set_result(part)
            self._dispatch()

        done.add_done_callback(deliver)
