"""scorer/batching.py and scorer/frame_cache.py: requests merge into batches, results go back to their owners."""

from __future__ import annotations

import asyncio
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
