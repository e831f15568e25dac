"""scorer/batching.py and scorer/frame_cache.py: requests merge into batches, results go back to their owners."""

from __future__ import annotations

import asyncio
import os
import threading

import numpy as np
import pytest

from common.errors import ModelError
from scorer.batching import MicroBatcher
from scorer.frame_cache import FrameFeatures

pytestmark = pytest.mark.unit


class Recorder:
    """A fake graph: doubles its input and remembers the batch sizes it saw (and on which thread)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.sizes.append(int(feeds["x"].shape[0]))
        self.threads.add(threading.current_thread().name)
        return {"y": feeds["x"] * 2, "n": np.full(feeds["x"].shape[0], feeds["x"].shape[0])}


async def test_concurrent_requests_share_a_batch_and_get_their_own_rows() -> None:
    batcher = MicroBatcher(max_batch=32, max_wait_s=0.05)
    fn = Recorder()
    try:
        inputs = [np.full((k, 3), i, np.float32) for i, k in enumerate([1, 2, 1, 3])]
        outs = await asyncio.gather(*(batcher.run("g", fn, {"x": x}) for x in inputs))
    finally:
        batcher.close()
    assert fn.sizes == [7]  # one call for all four requests
    for x, out in zip(inputs, outs, strict=True):
        np.testing.assert_array_equal(out["y"], x * 2)
        assert out["n"].tolist() == [7] * x.shape[0]
    assert fn.threads and all(t.startswith("scorer-batch") for t in fn.threads)
    stats = batcher.stats["graph"]
    assert (stats.calls, stats.rows, stats.requests) == (1, 7, 4) and stats.sizes == {"le_8": 1}


async def test_full_batches_go_at_once_and_never_split_a_request() -> None:
    batcher = MicroBatcher(max_batch=4, max_wait_s=10.0)  # the wait would time the test out: size must trigger
    fn = Recorder()
    try:
        outs = await asyncio.wait_for(
            asyncio.gather(*(batcher.run("g", fn, {"x": np.full((2, 1), i, np.float32)}) for i in range(4))), 5
        )
        big = await asyncio.wait_for(batcher.run("g", fn, {"x": np.ones((9, 1), np.float32)}), 5)
    finally:
        batcher.close()
    assert fn.sizes == [4, 4, 9]
    assert [o["y"][0, 0] for o in outs] == [0, 2, 4, 6] and big["y"].shape == (9, 1)


async def test_keys_batch_separately_and_a_partial_batch_waits_at_most_max_wait() -> None:
    batcher = MicroBatcher(max_batch=64, max_wait_s=0.02)
    a, b = Recorder(), Recorder()
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.gather(batcher.run("a", a, {"x": np.ones((1, 1))}), batcher.run("b", b, {"x": np.ones((2, 1))}))
        waited = loop.time() - t0
    finally:
        batcher.close()
    assert a.sizes == [1] and b.sizes == [2]
    assert 0.015 < waited < 1.0


async def test_a_failing_graph_fails_every_request_of_its_batch() -> None:
    def broken(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise ModelError("kernel failed")

    batcher = MicroBatcher(max_batch=8, max_wait_s=0.01)
    try:
        results = await asyncio.gather(*(batcher.run("g", broken, {"x": np.ones((1, 1))}) for _ in range(3)),
                                       return_exceptions=True)  # fmt: skip
        with pytest.raises(ValueError, match="same number of rows"):
            await batcher.run("g", broken, {"x": np.ones((1, 1)), "z": np.ones((2, 1))})
    finally:
        batcher.close()
    assert all(isinstance(r, ModelError) for r in results)


async def test_frame_features_are_computed_once_shared_while_in_flight_and_bounded() -> None:
    cache = FrameFeatures(keep=5)
    cache.use("model@1")
    cache.reserve([1, 2])
    assert cache.missing([1, 2, 3]) == [3]
    waiter = asyncio.create_task(cache.wait([1, 2]))
    await asyncio.sleep(0)
    cache.put([1, 2], np.array([[1.0], [2.0]]))
    got = await waiter
    assert got[1].tolist() == [1.0] and got[2].tolist() == [2.0]
    cache.put([3, 4, 5, 6, 7], np.arange(5.0)[:, None])
    assert len(cache) == 5 and 1 not in cache and 2 not in cache and 7 in cache  # the oldest frames went first
    cache.forget_before(6)
    assert sorted(s for s in range(10) if s in cache) == [6, 7]
    cache.use("model@2")  # another version: nothing of the old one survives
    assert len(cache) == 0 and cache.missing([6]) == [6]
    cache.reserve([9])
    failing = asyncio.create_task(cache.wait([9]))
    await asyncio.sleep(0)
    cache.fail([9], ModelError("boom"))
    with pytest.raises(ModelError):
        await failing


class Meeting:
    """A fake graph that only returns once ``parties`` calls are inside it at the same time (else it times out)."""

    def __init__(self, parties: int, timeout: float = 5.0) -> None:
        self.barrier = threading.Barrier(parties, timeout=timeout)
        self.sizes: list[int] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            self.sizes.append(int(feeds["x"].shape[0]))
            self.threads.add(threading.current_thread().name)
        self.barrier.wait()  # BrokenBarrierError unless the other call runs meanwhile
        return {"y": feeds["x"] * 2}


async def test_two_threads_run_two_graph_calls_at_once_and_spread_due_windows_over_them() -> None:
    batcher = MicroBatcher(max_batch=32, max_wait_s=0.5, workers=2, spread=True)  # all 16 arrive before it is due
    fn = Meeting(2)
    try:
        inputs = [np.full((1, 1), i, np.float32) for i in range(16)]
        outs = await asyncio.wait_for(asyncio.gather(*(batcher.run("w", fn, {"x": x}) for x in inputs)), 10)
    finally:
        batcher.close()
    assert sorted(fn.sizes) == [8, 8] and len(fn.threads) == 2  # not one call of 16 with a thread idle
    assert [float(o["y"][0, 0]) for o in outs] == [2.0 * i for i in range(16)]  # each request its own rows
    assert batcher.busy == 0


async def test_one_thread_runs_one_call_at_a_time() -> None:
    batcher = MicroBatcher(max_batch=1, max_wait_s=0.0, workers=1)
    fn = Meeting(2, timeout=0.5)
    try:
        results = await asyncio.gather(*(batcher.run("w", fn, {"x": np.ones((1, 1))}) for _ in range(2)),
                                       return_exceptions=True)  # fmt: skip
    finally:
        batcher.close()
    assert all(isinstance(r, threading.BrokenBarrierError) for r in results)  # the two calls never met


async def test_requests_arriving_while_every_thread_is_busy_join_the_next_batch_in_order() -> None:
    release = threading.Event()
    order: list[list[float]] = []

    def slow(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        order.append(feeds["x"][:, 0].tolist())
        release.wait(5)
        return {"y": feeds["x"]}

    batcher = MicroBatcher(max_batch=8, max_wait_s=0.0, workers=1)
    try:
        first = asyncio.ensure_future(batcher.run("g", slow, {"x": np.zeros((1, 1))}))
        await asyncio.sleep(0.05)  # the first call holds the only thread
        later = [asyncio.ensure_future(batcher.run("g", slow, {"x": np.full((1, 1), i)})) for i in (1, 2, 3)]
        await asyncio.sleep(0.05)
        assert batcher.busy == 1 and len(order) == 1  # not cut into three batches queued behind the first
        release.set()
        await asyncio.wait_for(asyncio.gather(first, *later), 5)
    finally:
        batcher.close()
    assert order == [[0.0], [1.0, 2.0, 3.0]]
    assert [float(f.result()["y"][0, 0]) for f in later] == [1.0, 2.0, 3.0]


def test_the_pool_is_sized_by_a_setting_and_spreads_on_the_cpu_only() -> None:
    from scorer.settings import ScorerSettings

    two = ScorerSettings(graph_threads=2).batcher()
    default = ScorerSettings().batcher()
    gpu = ScorerSettings(graph_threads=3, device="cuda").batcher()
    try:
        assert (two.workers, two.spread) == (2, True)
        assert default.workers == len(os.sched_getaffinity(0)) and default.spread
        assert (gpu.workers, gpu.spread) == (3, False)
    finally:
        for b in (two, default, gpu):
            b.close()


async def test_on_the_cpu_a_graph_call_carries_at_most_cpu_max_batch_rows() -> None:
    from scorer.settings import ScorerSettings

    cpu = ScorerSettings(graph_threads=2, max_wait_ms=500.0).batcher()  # all 16 windows arrive before they are due
    gpu = ScorerSettings(graph_threads=2, device="cuda", cpu_max_batch=2)
    fn = Recorder()
    try:
        inputs = [np.full((1, 1), i, np.float32) for i in range(16)]
        outs = await asyncio.wait_for(asyncio.gather(*(cpu.run("w", fn, {"x": x}) for x in inputs)), 10)
        frames = await asyncio.wait_for(cpu.run("f", fn, {"x": np.zeros((8, 1), np.float32)}), 10)
    finally:
        cpu.close()
    assert ScorerSettings().cpu_max_batch == 2
    windows, frame_calls = fn.sizes[:-1], fn.sizes[-1:]
    assert sum(windows) == 16 and max(windows) == 2  # calls of at most 2 windows, not two of 8 (the spread alone)
    assert frame_calls == [8]  # a request larger than the limit runs whole, never split
    assert [float(o["y"][0, 0]) for o in outs] == [2.0 * i for i in range(16)]
    assert frames["y"].shape == (8, 1)
    assert gpu.batch_rows() == gpu.max_batch == 32  # a GPU still fills its batches
