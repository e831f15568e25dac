"""common.tasks.stop_tasks: background loops end even when a cancellation is swallowed, and never hang a shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time

import pytest

from common.tasks import stop_tasks


async def _redis_like_loop(results: list[object]) -> None:
    """A loop whose every round is a wait for a reply (a millisecond) and ``asyncio.wait_for`` on a future completed
    from outside (as redis-py's socket write under its socket timeout ends)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(0.001)
        fut: asyncio.Future[int] = loop.create_future()
        loop.call_soon(fut.set_result, len(results))
        results.append(await asyncio.wait_for(fut, 5))


async def _cancelled_as_its_wait_for_finishes() -> tuple[asyncio.Task[None], list[object]]:
    """A task inside ``wait_for`` whose inner future has just completed (its wake-up is queued), then cancelled."""
    results: list[object] = []
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()

    async def waits_then_loops() -> None:
        results.append(await asyncio.wait_for(gate, 5))
        await _redis_like_loop(results)

    task = asyncio.create_task(waits_then_loops())
    await asyncio.sleep(0)  # it now waits on the gate inside wait_for
    gate.set_result(-1)  # the inner future is done; wait_for's wake-up is scheduled, not yet run
    task.cancel()
    return task, results


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12's wait_for keeps the cancellation")
async def test_one_cancel_can_be_swallowed_by_wait_for_on_python_3_11() -> None:
    task, results = await _cancelled_as_its_wait_for_finishes()
    await asyncio.sleep(0.05)
    # the cancel is lost: the loop goes on (what left the dashboard's scores consumer running after shutdown)
    assert not task.done() and len(results) > 1 and results[0] == -1
    await stop_tasks([task], grace_s=0.0)
    assert task.cancelled()


async def test_a_swallowed_cancel_is_repeated_until_the_task_ends() -> None:
    task, _ = await _cancelled_as_its_wait_for_finishes()
    t0 = time.monotonic()
    stuck = await stop_tasks([task], timeout_s=5.0, grace_s=0.1, recancel_s=0.05)
    assert stuck == [] and task.cancelled()
    assert time.monotonic() - t0 < 1.0


async def test_clean_up_gets_its_grace_before_a_second_cancel() -> None:
    cleaned: list[str] = []

    async def releases_on_cancel() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.2)  # e.g. releasing its lease in Redis
            cleaned.append("released")

    task = asyncio.create_task(releases_on_cancel())
    await asyncio.sleep(0)
    assert await stop_tasks([task], grace_s=1.0) == []
    assert cleaned == ["released"]


async def test_a_task_that_never_lets_go_is_returned_and_logged_where_it_is(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def ignores_every_cancel() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.01)

    task = asyncio.create_task(ignores_every_cancel(), name="stubborn")
    ended = asyncio.create_task(asyncio.sleep(60), name="polite")
    await asyncio.sleep(0)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="common.tasks"):
        stuck = await stop_tasks([task, ended], timeout_s=0.5, grace_s=0.1, recancel_s=0.05, what="loop")
    assert 0.5 <= time.monotonic() - t0 < 1.5
    assert stuck == [task] and ended.cancelled()
    assert "loop 'stubborn' did not stop within 0.5 s" in caplog.text and "in ignores_every_cancel" in caplog.text
    release.set()
    await task


async def test_failed_and_finished_tasks_are_retrieved_not_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failing = asyncio.create_task(fails())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    assert await stop_tasks([failing, finished]) == []
    # retrieved: the loop's "exception was never retrieved" report is not made when the task is collected
    assert failing._log_traceback is False
