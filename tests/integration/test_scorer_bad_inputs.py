"""Every bad input the scorer meets, on a real Redis: each window gets a Score with the reason it was withheld (and
kinematics), or is dropped and counted, or dead-lettered; nothing crashes the worker and good windows still score.

Observations and crops are the tracker pipeline's own output for phantom frames (phantom ground-truth landmarker,
a test-only oracle), published as the tracker publishes them; the windows are written by hand to hit each case.
Each test has a Redis of its own (``private_redis``), for the reason tests/integration/test_scorer_worker.py gives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from common.backlog import pending_count
from common.bus import Bus
from common.messages import Consent, DeadLetter, Obs, Score, Window
from common.streams import CROPS, DEADLETTER, OBS, WINDOWS
from infra.redis_server import RedisServer
from phantom.spec import PatientSpec
from scorer.worker import ScorerWorker
from tests.conftest import live_session
from tests.model_artifacts import LANDMARKER, copy_artifact, nan_window_graph
from tests.phantom_obs import observe
from tests.scorer_harness import running, scorer_settings, scores, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240), pytest.mark.prebuilt("random-artifact")]
FPS = 25.0
N = 40
SPEC = PatientSpec(seed=8, protocol="pfed5", severity=1.0, reps=1, tasks=("smile",))
GOOD_QUALITY = {"frames": float(N), "face_fraction": 1.0, "ok": 1.0}


@pytest.fixture(scope="module")
def artifact(random_artifact: Path) -> Path:
    return random_artifact


def _window(sid: str, reason: str = "task_end", **kw: object) -> Window:
    base: dict[str, object] = {"sid": sid, "protocol": "pfed5", "task": "smile", "rep": 0, "reason": reason,
                               "first_seq": 0, "last_seq": N - 1, "task_start_seq": 0, "created_ts": time.time(),
                               "landmarker": LANDMARKER, "quality": GOOD_QUALITY}  # fmt: skip
    base.update(kw)
    return Window(**base)  # type: ignore[arg-type]


ObsEdit = Callable[[list[Obs]], list[Obs]]


def _nan_points(frames: set[int]) -> ObsEdit:
    def edit(obs: list[Obs]) -> list[Obs]:
        out = []
        for o in obs:
            if o.seq in frames and o.landmarks is not None:
                o = dataclasses.replace(o, landmarks=np.full_like(o.landmarks, np.nan))
            out.append(o)
        return out

    return edit


def _drop(frames: set[int]) -> ObsEdit:
    return lambda obs: [o for o in obs if o.seq not in frames]


def _time_gap(after: int, gap_s: float) -> ObsEdit:
    return lambda obs: [dataclasses.replace(o, capture_ts=o.capture_ts + (gap_s if o.seq > after else 0)) for o in obs]


# case -> (session consent, edit of the observations, the windows, expected withheld reason per window)
CASES: dict[str, tuple[bool, ObsEdit | None, Callable[[str], list[Window]], list[str]]] = {
    "good": (True, None, lambda s: [_window(s, "hop", last_seq=23), _window(s)], ["", ""]),
    "no_consent": (False, None, lambda s: [_window(s)], ["no_consent"]),
    "no_task": (True, None, lambda s: [_window(s, "hop", task="", task_start_seq=-1, last_seq=30)], ["no_task"]),
    "no_model": (True, None, lambda s: [_window(s, task="squeeze_eyes")], ["no_model"]),
    "unknown_task": (True, None, lambda s: [_window(s, task="juggle")], ["no_model"]),
    "quality_gate": (True, None, lambda s: [_window(s, failed=("turned", "too_dark"))], ["quality:turned,too_dark"]),
    "other_landmarker": (
        True,
        None,
        lambda s: [_window(s, landmarker="mediapipe-facemesh/t1")],
        ["landmarker_mismatch"],
    ),
    "short": (True, None, lambda s: [_window(s, first_seq=10, last_seq=14, task_start_seq=10)], ["short_window"]),
    "gappy": (True, _time_gap(20, 1.2), lambda s: [_window(s)], ["quality:gap"]),
    "mostly_nan": (True, _nan_points(set(range(4, N))), lambda s: [_window(s)], ["short_window"]),
    "some_nan": (True, _nan_points({5, 6, 20}), lambda s: [_window(s)], [""]),
    "obs_missing": (True, _drop(set(range(N))), lambda s: [_window(s)], ["short_window"]),
    "nan_model": (True, None, lambda s: [_window(s, task="frown")], ["model_error"]),
}


async def _publish_case(private_bus: Bus, sid: str, consent: bool, edit: ObsEdit | None) -> None:
    await live_session(private_bus, sid, phantom=SPEC.to_json(), fps=FPS, consent=Consent(live_scoring=consent))
    seen = observe(SPEC, range(N), fps=FPS, sid=sid)
    obs = edit(seen.obs) if edit else seen.obs
    await private_bus.publish_many(OBS, obs)
    await private_bus.publish_many(CROPS, seen.crops)


async def test_every_bad_input_gets_its_reason_and_good_windows_still_score(
    private_bus: Bus, private_redis: RedisServer, sid: str, artifact: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    copy_artifact(artifact, models, version="1")
    nan_window_graph(artifact, models, version="1", task="frown")
    scorer = ScorerWorker(scorer_settings(private_redis.url, models, consumer="bad"), private_bus)
    sids = {case: f"{sid}{i}" for i, case in enumerate(CASES)}
    gone, wrong = f"{sid}g", f"{sid}w"
    for case, (consent, edit, make, _) in CASES.items():
        await _publish_case(private_bus, sids[case], consent, edit)
        await private_bus.publish_many(WINDOWS, make(sids[case]))
    for extra in (gone, wrong):
        await _publish_case(private_bus, extra, True, None)
    await private_bus.run("delete a session hash", lambda r: r.delete(f"session:{{{gone}}}"))  # the session vanished
    await private_bus.publish(WINDOWS, _window(gone))
    await private_bus.publish(WINDOWS, _window("someone-else"), sid=wrong)  # a window of another session on this stream
    async with running(scorer):

        async def all_scored() -> bool:
            for case, (_, _, _, expect) in CASES.items():
                if len(await scores(private_bus, sids[case])) < len(expect):
                    return False
            letters = [d for d in await private_bus.range(DEADLETTER) if d.message.stream == WINDOWS.key(wrong)]
            return bool(await scores(private_bus, gone)) and bool(letters)

        await wait_for(all_scored, 90, "a score for every window")
    for case, (_, _, _, expect) in CASES.items():
        got: list[Score] = await scores(private_bus, sids[case])
        assert [s.withheld for s in got] == expect, (case, [(s.withheld, s.quality) for s in got])
        for s in got:
            assert (s.score is None) == bool(s.withheld)
            if case != "obs_missing":
                assert s.kinematics["frames"] > 0 and "duration_s" in s.kinematics, case
            if not s.withheld:
                assert s.model == "tramp_former:pfed5/smile" and s.version == "1" and s.raw is not None
    some_nan = (await scores(private_bus, sids["some_nan"]))[0]
    assert some_nan.quality["filled_frames"] >= 1 and some_nan.kinematics["frames"] == N - 3
    assert (await scores(private_bus, sids["no_task"]))[0].kinematics["rom_mouth"] > 0  # kinematics flow without a task
    assert [s.withheld for s in await scores(private_bus, gone)] == ["session_gone"]
    assert await scores(private_bus, wrong) == []
    letters = [d.message for d in await private_bus.range(DEADLETTER) if d.message.stream == WINDOWS.key(wrong)]
    assert len(letters) == 1 and isinstance(letters[0], DeadLetter) and "someone-else" in letters[0].error
    counters = scorer.stats.counters
    assert counters["dead_lettered"] == 1 and counters["withheld_model_error"] == 1
    assert counters["withheld_quality"] == 2 and counters["windows_stale"] == 0
    for s in [*sids.values(), gone, wrong]:
        assert await pending_count(private_bus, WINDOWS, s) == 0  # every window acked once its score was out


async def test_stale_hops_are_dropped_and_counted_but_task_ends_never(
    private_bus: Bus, private_redis: RedisServer, sid: str, artifact: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    copy_artifact(artifact, models, version="1")
    await _publish_case(private_bus, sid, True, None)
    await private_bus.publish(WINDOWS, _window(sid, "hop", last_seq=15))
    await private_bus.publish(WINDOWS, _window(sid, "hop", last_seq=23))
    await private_bus.publish(WINDOWS, _window(sid))
    await asyncio.sleep(1.0)  # all three are now older than stale_ms
    scorer = ScorerWorker(scorer_settings(private_redis.url, models, consumer="stale", stale_ms=500), private_bus)
    async with running(scorer):

        async def scored() -> bool:
            return bool(await scores(private_bus, sid))

        await wait_for(scored, 60, "the task score")
    got = await scores(private_bus, sid)
    assert [(s.kind, s.withheld) for s in got] == [("task", "")]
    assert scorer.stats.counters["windows_stale"] == 2 and await pending_count(private_bus, WINDOWS, sid) == 0


async def test_superseded_hops_are_dropped_newest_wins(
    private_bus: Bus, private_redis: RedisServer, sid: str, artifact: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    copy_artifact(artifact, models, version="1")
    await _publish_case(private_bus, sid, True, None)
    await private_bus.publish_many(WINDOWS, [_window(sid, "hop", last_seq=n) for n in (15, 23, 31)])
    scorer = ScorerWorker(scorer_settings(private_redis.url, models, consumer="newest"), private_bus)
    async with running(scorer):

        async def scored() -> bool:
            return bool(await scores(private_bus, sid))

        await wait_for(scored, 60, "a hop score")
    assert [s.last_seq for s in await scores(private_bus, sid)] == [31]
    assert scorer.stats.counters["windows_superseded"] == 2
