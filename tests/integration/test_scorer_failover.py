"""Two scorer processes share sessions; one is killed (SIGKILL, no release, windows left pending) mid-session. The
other takes its sessions over within the lease time and no task score is lost: every task-end window of every
session has a task score (a window scored twice before the crash is de-duplicated by ``Score.key``). And a worker
whose scoring round outlasts the lease keeps its session (it renews while the graphs run).

Frames go through ingest's frame pump and the tracker worker (phantom ground-truth landmarker, a test-only oracle)
in this process; the scorers are ``python -m scorer`` children."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy.typing as npt
import pytest

from common.backlog import pending_count
from common.bus import Bus
from common.leases import Leases
from common.messages import Window
from common.streams import CROPS, OBS, WINDOWS
from infra.redis_server import RedisServer
from phantom.spec import PatientSpec
from scorer.backends import Backend, BackendChoice, IOSpec
from scorer.registry import ModelRegistry
from scorer.worker import ScorerWorker
from tests.conftest import live_session, open_bus
from tests.model_artifacts import LANDMARKER, copy_artifact
from tests.phantom_obs import observe
from tests.scorer_harness import (
    PhantomStream,
    open_session,
    running,
    scorer_settings,
    scores,
    tracker_worker,
    wait_for,
    windows,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
FPS = 15.0  # the stream's rate; the model runs at 25 fps (resampled by capture time)
TTL_MS = 900
Array = npt.NDArray[Any]


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A Redis of its own: no session of another test competes for these workers."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def fbus(own_redis: RedisServer) -> AsyncIterator[Bus]:
    async for b in open_bus(own_redis.url):
        yield b


def _spawn(name: str, url: str, models: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update({
        "FEQA_REDIS_URL": url,
        "FEQA_MODELS_DIR": str(models),
        "FEQA_SCORER_CONSUMER": name,
        "FEQA_SCORER_LEASE_TTL_MS": str(TTL_MS),
        "FEQA_SCORER_RECLAIM_IDLE_MS": "300",
        "FEQA_SCORER_STALE_MS": "60000",
        "FEQA_SCORER_INTRA_OP_THREADS": "1",
        "FEQA_SCORER_END_GRACE_S": "1.0",
    })  # fmt: skip
    log = (models.parent / f"{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "scorer"], cwd=ROOT, env=env, stderr=log, stdout=log)


@pytest.mark.prebuilt("random-artifact")
async def test_a_killed_scorers_sessions_are_taken_over_with_no_task_score_lost(
    fbus: Bus, own_redis: RedisServer, tmp_path: Path, random_artifact: Path
) -> None:
    models = tmp_path / "models"
    copy_artifact(random_artifact, models, version="1")
    leases = Leases(fbus, "scorer")
    sids = [f"fo{i}" for i in range(4)]
    specs = {s: PatientSpec(seed=20 + i, protocol="pfed5", severity=float(i), reps=2, tasks=("smile",), head_motion=0.0)
             for i, s in enumerate(sids)}  # fmt: skip

    async def owners() -> dict[str, str | None]:
        return {s: await leases.holder(s) for s in sids}

    scorers = {"s1": _spawn("s1", own_redis.url, models)}
    stores = {}
    try:
        # the gate is not under test here: a full phantom smile can read as a turned head to the pose estimate
        async with running(tracker_worker(fbus, max_yaw_deg=85.0, max_pitch_deg=85.0)):
            for s in sids[:2]:
                stores[s] = await open_session(fbus, s, specs[s], FPS)

            async def s1_owns_two() -> bool:
                return [(await owners())[s] for s in sids[:2]] == ["s1", "s1"]

            await wait_for(s1_owns_two, 60, "s1 to take the first sessions")
            scorers["s2"] = _spawn("s2", own_redis.url, models)

            async def s2_up() -> bool:
                clients = await fbus.run("clients", lambda r: r.client_list())
                return any(c.get("name") == "scorer-s2" for c in clients)

            await wait_for(s2_up, 60, "s2 to connect")
            for s in sids[2:]:
                stores[s] = await open_session(fbus, s, specs[s], FPS)

            async def all_owned() -> bool:
                return None not in (await owners()).values()

            await wait_for(all_owned, 20, "all sessions to be owned")
            before = await owners()
            assert set(before.values()) == {"s1", "s2"}, before  # the sessions are shared
            streams = {s: PhantomStream(fbus, s, specs[s], FPS) for s in sids}
            schedules = {s: streams[s].phantom.schedule for s in sids}
            took: asyncio.Task[float] | None = None

            async def time_takeover(killed_at: float) -> float:
                while set((await owners()).values()) != {"s2"}:
                    await asyncio.sleep(0.05)
                return time.monotonic() - killed_at

            for k in range(2):  # repetition k of every session, frames interleaved across sessions
                for s in sids:
                    seg = schedules[s][k]
                    await stores[s].event(s, "pfed5", "task_start", task="smile", rep=seg.rep, seq=seg.start)
                longest = max(seg.end - seg.start for seg in (schedules[s][k] for s in sids))
                for j in range(longest):
                    for s in sids:
                        seg = schedules[s][k]
                        if seg.start + j < seg.end:
                            await streams[s].publish(seg.start + j)
                    if k == 0 and j == longest // 2:
                        scorers["s1"].send_signal(signal.SIGKILL)  # mid-task: no release, windows left pending
                        took = asyncio.create_task(time_takeover(time.monotonic()))
                for s in sids:
                    seg = schedules[s][k]
                    await stores[s].event(s, "pfed5", "task_end", task="smile", rep=seg.rep, seq=seg.end - 1)

            assert took is not None
            takeover_s = await asyncio.wait_for(took, 20)

            async def last_windows() -> bool:  # the tracker's task-end windows are out before the sessions end
                counts = [sum(w.reason == "task_end" for w in await windows(fbus, s)) for s in sids]
                return counts == [2] * len(sids)

            await wait_for(last_windows, 30, "the tracker's task-end windows")
            for s in sids:
                await stores[s].end(s, "completed")

            async def every_task_scored() -> bool:
                for s in sids:
                    ends = {(w.rep, w.last_seq) for w in await windows(fbus, s) if w.reason == "task_end"}
                    got = {(x.rep, x.last_seq) for x in await scores(fbus, s) if x.kind == "task"}
                    if not ends or ends != got:
                        return False
                return True

            await wait_for(every_task_scored, 90, "a task score for every task-end window")
        assert takeover_s < 3 * TTL_MS / 1000 + 2.0, takeover_s  # within the lease time, plus a loaded box's slack
        for s in sids:
            task_scores = [x for x in await scores(fbus, s) if x.kind == "task"]
            keys = {x.key for x in task_scores}
            assert len(keys) == 2, keys
            assert all(x.score is not None and x.version == "1" for x in task_scores), [
                (x.key, x.withheld, x.quality) for x in task_scores
            ]
            assert await pending_count(fbus, WINDOWS, s) == 0
    finally:
        for proc in scorers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.wait()


class _SlowBackend:
    """A real graph that takes ``delay[0]`` seconds longer per call (a paper-size model on a slow CPU)."""

    def __init__(self, inner: Backend, delay: list[float]) -> None:
        self.inner = inner
        self.delay = delay

    @property
    def description(self) -> str:
        return f"slow {self.inner.description}"

    @property
    def inputs(self) -> tuple[IOSpec, ...]:
        return self.inner.inputs

    @property
    def outputs(self) -> tuple[IOSpec, ...]:
        return self.inner.outputs

    def run(self, feeds: dict[str, Array]) -> dict[str, Array]:
        time.sleep(self.delay[0])  # on the batcher's thread, as a long graph call would be
        return self.inner.run(feeds)


@dataclasses.dataclass(frozen=True)
class _SlowChoice(BackendChoice):
    delay: list[float] = dataclasses.field(default_factory=lambda: [0.0])

    def open(self, path: Path) -> Backend:
        return _SlowBackend(super().open(path), self.delay)


@pytest.mark.prebuilt("random-artifact")
async def test_a_round_slower_than_the_lease_keeps_the_session(
    fbus: Bus, own_redis: RedisServer, tmp_path: Path, random_artifact: Path
) -> None:
    """Scoring a round takes over twice the lease time; the worker renews meanwhile, so a rival never takes the
    session, and every window is scored once and acked."""
    models = tmp_path / "models"
    copy_artifact(random_artifact, models, version="1")
    sid, ttl_ms, n = "slow0", 600, 30
    # three repetitions: the fair phantom draws each one's length (one smile can be shorter than the 3 n frames read)
    spec = PatientSpec(seed=8, protocol="pfed5", severity=1.0, reps=3, tasks=("smile",))
    await live_session(fbus, sid, phantom=spec.to_json(), fps=25.0)
    seen = observe(spec, range(3 * n), fps=25.0, sid=sid)  # a task clip of n frames per round
    await fbus.publish_many(OBS, seen.obs)
    await fbus.publish_many(CROPS, seen.crops)
    choice = _SlowChoice(intra_op_threads=1)
    settings = {"lease_ttl_ms": ttl_ms, "reclaim_idle_ms": 200, "health_every_s": 60.0}
    slow = ScorerWorker(scorer_settings(own_redis.url, models, consumer="slow", **settings), fbus,
                        ModelRegistry(models, choice))  # fmt: skip
    rival = ScorerWorker(scorer_settings(own_redis.url, models, consumer="rival", **settings), fbus)
    leases = Leases(fbus, "scorer")
    holders: list[str | None] = []
    async with running(slow):

        async def slow_holds() -> bool:
            return await leases.holder(sid) == "slow"

        await wait_for(slow_holds, 30, "the slow worker to take the session")
        choice.delay[0] = 2.5 * ttl_ms / 1000
        async with running(rival):
            for k in range(3):  # three rounds, each over twice the lease time
                w = Window(sid=sid, protocol="pfed5", task="smile", rep=k, reason="task_end", first_seq=k * n,
                           last_seq=k * n + n - 1, task_start_seq=k * n, created_ts=time.time(),
                           landmarker=LANDMARKER)  # fmt: skip
                await fbus.publish(WINDOWS, w)

                async def scored(k: int = k) -> bool:
                    holders.append(await leases.holder(sid))
                    return len(await scores(fbus, sid)) > k

                await wait_for(scored, 60, f"the score of round {k}")
    got = await scores(fbus, sid)
    assert [(s.rep, s.withheld) for s in got] == [(0, ""), (1, ""), (2, "")], [(s.rep, s.withheld) for s in got]
    assert set(holders) == {"slow"}, holders
    assert slow.stats.counters["sessions_taken"] == 1 and rival.stats.counters["sessions_taken"] == 0
    assert slow.stats.counters["windows_reclaimed"] == 0  # its own round in flight was not reclaimed by itself
    assert await pending_count(fbus, WINDOWS, sid) == 0
