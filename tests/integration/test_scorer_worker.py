"""The scorer worker on a real Redis, behind ingest's frame pump and the tracker (phantom ground-truth landmarker, a
test-only oracle): scores for every task, kinematics always, health, and hot reload of model versions.

Each test has a Redis of its own (``private_redis``): a scorer or tracker worker competes for every live session in
its Redis, and one holding k sessions waits k lease rounds before it takes a free one, so on the shared one other
tests' live sessions delayed these by 0.5-7 s, by where their session sorted among them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from common.bus import Bus
from common.streams import HEALTH
from infra.redis_server import RedisServer
from phantom.spec import PatientSpec
from scorer.worker import ScorerWorker
from tests.model_artifacts import copy_artifact
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
from tracker.worker import TrackerWorker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240), pytest.mark.prebuilt("random-artifact")]
FPS = 25.0


@pytest.fixture(scope="module")
def artifact(random_artifact: Path) -> Path:
    return random_artifact


async def _perform(
    private_bus: Bus, sid: str, spec: PatientSpec, *, end: bool = True
) -> list[tuple[str, int, int, int]]:
    """Stream the phantom's whole protocol with task_start / task_end events at its segments, as the patient page
    does; returns (task, rep, first, last frame) of each repetition."""
    store = await open_session(private_bus, sid, spec, FPS)
    stream = PhantomStream(private_bus, sid, spec, FPS)
    reps = []
    for seg in stream.phantom.schedule:
        await store.event(sid, spec.protocol, "task_start", task=seg.task, rep=seg.rep, seq=seg.start)
        for i in range(seg.start, seg.end):
            await stream.publish(i)
        await store.event(sid, spec.protocol, "task_end", task=seg.task, rep=seg.rep, seq=seg.end - 1)
        reps.append((seg.task, seg.rep, seg.start, seg.end - 1))

    async def last_task_window() -> bool:  # the tracker drops a task end that arrives with the session's end
        return sum(w.reason == "task_end" for w in await windows(private_bus, sid)) == len(
            reps
        )  # (spine issue, item 9)

    await wait_for(last_task_window, 30, "the tracker's last task-end window")
    if end:
        await store.end(sid, "completed")
    return reps


async def test_every_task_gets_a_score_or_a_reason_with_kinematics(
    private_bus: Bus, private_redis: RedisServer, sid: str, artifact: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    copy_artifact(artifact, models, version="1")
    spec = PatientSpec(seed=5, protocol="pfed5", severity=1.0, reps=1, tasks=("smile", "frown"))
    scorer = ScorerWorker(scorer_settings(private_redis.url, models, consumer="s1", health_every_s=0.2), private_bus)
    async with running(tracker_worker(private_bus), scorer):
        reps = await _perform(private_bus, sid, spec)

        async def both_tasks_scored() -> bool:
            return len([s for s in await scores(private_bus, sid) if s.kind == "task"]) == len(reps)

        await wait_for(both_tasks_scored, 60, "a task score per repetition")

        async def released() -> bool:
            return sid not in scorer.sessions

        await wait_for(released, 10, "the ended session to be drained and released")
    got = await scores(private_bus, sid)
    tasks = {s.task: s for s in got if s.kind == "task"}
    for task, rep, first, last in reps:
        s = tasks[task]
        assert (s.rep, s.first_seq, s.last_seq, s.protocol) == (rep, first, last, "pfed5")
        assert (s.scale, s.scale_min, s.scale_max) == ("mds-updrs-3.2", 0.0, 4.0)
        assert s.kinematics["frames"] == last - first + 1
        assert "rom_mouth" in s.kinematics and "blink_rate" in s.kinematics
        assert s.quality["face_fraction"] == 1.0
    smile, frown = tasks["smile"], tasks["frown"]
    assert smile.withheld == "" and smile.score is not None and smile.raw is not None
    assert 0.0 <= smile.score <= 4.0 and smile.model == "tramp_former:pfed5/smile" and smile.version == "1"
    assert smile.score == pytest.approx(min(4.0, max(0.0, smile.raw)), abs=1e-5)  # the identity calibration
    assert frown.withheld == "no_model" and frown.score is None and frown.model == ""
    assert frown.kinematics["rom_brow_left"] > 0
    hops = [s for s in got if s.kind == "window" and s.task == "smile"]
    assert hops and all(h.score is not None and h.version == "1" for h in hops)
    assert all(h.last_seq - h.first_seq + 1 <= 16 for h in hops)  # kinematics of the model's 16-frame window
    assert [s.key for s in got if s.kind == "task"] == [f"{sid}:task:{t}:{r}:{last}" for t, r, _, last in reps]
    health = [d.message for d in await private_bus.range(HEALTH) if d.message.instance == "s1"]
    last_health = health[-1]
    assert last_health.service == "scorer" and last_health.counters["task_scores"] >= 1
    assert last_health.counters["withheld_no_model"] >= 1 and last_health.counters["frames_computed"] >= 8
    assert last_health.counters["frames_reused"] > 0 and last_health.gauges["latency_p99_ms"] > 0
    assert any(k.startswith("batch_window_le_") for k in last_health.counters)


async def test_a_new_version_is_served_without_restart_and_a_corrupt_one_is_refused(
    private_bus: Bus, private_redis: RedisServer, sid: str, artifact: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    copy_artifact(artifact, models, version="1")
    spec = PatientSpec(seed=6, protocol="pfed5", severity=2.0, reps=3, tasks=("smile",))
    scorer = ScorerWorker(scorer_settings(private_redis.url, models, consumer="hot"), private_bus)
    store = await open_session(private_bus, sid, spec, FPS, tracked=False)  # the tracker starts below and takes it then
    stream = PhantomStream(private_bus, sid, spec, FPS)
    segments = stream.phantom.schedule

    async def perform(k: int) -> None:
        seg = segments[k]
        await store.event(sid, "pfed5", "task_start", task="smile", rep=seg.rep, seq=seg.start)
        for i in range(seg.start, seg.end):
            await stream.publish(i)
        await store.event(sid, "pfed5", "task_end", task="smile", rep=seg.rep, seq=seg.end - 1)

    async def task_versions() -> list[str]:
        return [s.version for s in await scores(private_bus, sid) if s.kind == "task"]

    tracker = tracker_worker(private_bus)
    async with running(tracker, scorer):
        await wait_for(lambda: _tracked(tracker, sid), 30, "the tracker to take the session")
        await perform(0)
        await wait_for(lambda: _has(task_versions, 1), 60, "the first task score")
        copy_artifact(artifact, models, version="2")  # a new version dropped in while the scorer runs
        await wait_for(lambda: _served(scorer, "2"), 30, "version 2 to be served")
        await perform(1)
        await wait_for(lambda: _has(task_versions, 2), 60, "the second task score")
        bad = copy_artifact(artifact, models, version="3")
        graph = bad / "window.onnx"
        graph.write_bytes(graph.read_bytes()[:1000])  # truncated: its sha256 no longer matches
        await wait_for(lambda: _refused(scorer, bad), 30, "version 3 to be refused")
        await perform(2)
        await wait_for(lambda: _has(task_versions, 3), 60, "the third task score")
        await store.end(sid, "completed")
    assert await task_versions() == ["1", "2", "2"]
    (refusal,) = [r for r in scorer.registry.refused if r.folder == bad]
    assert "sha256" in refusal.reason
    shutil.rmtree(models / "pfed5" / "smile" / "2")
    assert list(scorer.registry.scan()) == ["pfed5/smile"] and scorer.registry.get("pfed5", "smile").version == "1"


async def _tracked(tracker: TrackerWorker, sid: str) -> bool:
    return sid in tracker.owned


async def _has(versions: object, n: int) -> bool:
    return len(await versions()) >= n  # type: ignore[operator]


async def _served(scorer: ScorerWorker, version: str) -> bool:
    model = scorer.registry.get("pfed5", "smile")
    return model is not None and model.version == version


async def _refused(scorer: ScorerWorker, folder: Path) -> bool:
    return any(r.folder == folder for r in scorer.registry.refused)
