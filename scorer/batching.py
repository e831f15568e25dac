"""Micro-batching across sessions: requests for the same graph wait at most ``max_wait_s`` (or until ``max_batch``
rows are pending) and run as one batch, so a busy CPU or a GPU serves many sessions with few calls.

A request carries any number of rows (the first axis of every feed: one window, or the new frames of a window).
Batches never split a request; one larger than ``max_batch`` runs on its own. Graph calls run one at a time on a
single worker thread (the runtimes use their own threads inside a call; two calls at once would only fight for the
cores), so the event loop stays free to read and publish while a batch runs.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import logging
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
    """Collects requests per key (one key per loaded graph) and runs them in batches on one worker thread."""

    def __init__(self, max_batch: int, max_wait_s: float) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_s >= 0, got {max_batch}, {max_wait_s}")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: dict[Hashable, list[_Pending]] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._fns: dict[Hashable, RunFn] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer-batch")
        self.stats: dict[str, BatchStats] = collections.defaultdict(BatchStats)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, key: Hashable, fn: RunFn, feeds: Feeds, kind: str = "graph") -> Feeds:
        """Run ``fn`` on ``feeds`` within a batch of other requests for ``key``; the outputs for these rows."""
        rows = {int(v.shape[0]) for v in feeds.values()}
        if len(rows) != 1:
            raise ValueError(f"every feed needs the same number of rows, got {sorted(rows)}")
        loop = asyncio.get_running_loop()
        item = _Pending(feeds, rows.pop(), loop.create_future())
        self._fns[key] = fn
        queue = self._pending.setdefault(key, [])
        queue.append(item)
        if sum(p.rows for p in queue) >= self.max_batch:
            self._flush(key, kind, everything=False)
        elif key not in self._timers:
            self._timers[key] = loop.call_later(self.max_wait_s, self._flush, key, kind, True)
        return await item.future

    def _flush(self, key: Hashable, kind: str, everything: bool) -> None:
        """Launch full batches (and, when the wait is over, the partial rest); a partial rest waits again."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        queue = self._pending.get(key, [])
        while queue:
            take: list[_Pending] = []
            rows = 0
            while queue and (not take or rows + queue[0].rows <= self.max_batch):
                rows += queue[0].rows
                take.append(queue.pop(0))
            if not everything and rows < self.max_batch and not queue:
                queue[:0] = take  # a partial batch: let it gather more until its deadline
                break
            self._launch(key, take, kind)
        if queue:
            self._timers[key] = asyncio.get_running_loop().call_later(self.max_wait_s, self._flush, key, kind, True)
        else:
            self._pending.pop(key, None)

    def _launch(self, key: Hashable, items: list[_Pending], kind: str) -> None:
        fn = self._fns[key]
        names = list(items[0].feeds)
        feeds = {n: np.concatenate([p.feeds[n] for p in items]) if len(items) > 1 else items[0].feeds[n] for n in names}
        rows = sum(p.rows for p in items)
        self.stats[kind].record(rows, len(items))
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._pool, fn, feeds)

        def deliver(fut: asyncio.Future[Feeds]) -> None:
            try:
                out = fut.result()
            except BaseException as exc:  # the graph failed: every request of the batch gets the error
                for p in items:
                    if not p.future.done():
                        p.future.set_exception(exc)
                return
            start = 0
            for p in items:
                part = {k: v[start : start + p.rows] for k, v in out.items()}
                start += p.rows
                if not p.future.done():
                    p.future.set_result(part)

        done.add_done_callback(deliver)
