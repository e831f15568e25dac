"""Task scores rank phantom severities: a micro TraMP-Former trained in this test on phantom smiles (by the trainer's
own dataset, training, calibration and export code), then live phantom sessions of held-out subjects streamed
through ingest's frame pump, the tracker (phantom ground-truth landmarker, a test-only oracle) and the scorer.

The data are fair by construction: every clip starts a few frames (2-4, drawn alike for every severity) before the
phantom's own movement onset, so the onset delay (which the phantom still ties to severity) is cut away, and every
severity gets exactly the same multiset of clip lengths, so clip length (and the absolute ``index_t`` it drives)
has zero rank correlation with severity. The model's Spearman is reported beside that clip-length baseline and a
constant one, on the same live clips, and must beat them.

Training runs in a child process (tests/ranking_model.py, a build started when the tests are collected:
tests/prebuild.py) with a fixed seed (``train.seed=0``) and a fixed ``PYTHONHASHSEED``: training is not yet
bit-reproducible across hash seeds (one CI run scored Spearman 0.36 where others passed), so without that the test's
outcome was a draw of the test process's hash seed. With both fixed it trains one model, and the live ranking must
clear the bar by a margin measured for that model (see ``tests.ranking_model.HASH_SEED``).
"""

from __future__ import annotations

import numpy as np
import pytest

from common.bus import Bus
from infra.redis_server import RedisServer
from phantom.spec import PatientSpec
from scorer.worker import ScorerWorker
from tests import ranking_model
from tests.prebuild import Prebuilds
from tests.ranking_model import FPS, cuts, subjects
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
from trainer.metrics import spearman

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.prebuilt("ranking"), pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def redis_server(module_redis: RedisServer) -> RedisServer:
    """A Redis of the module's own in place of the session's (the ``bus`` fixture connects to it): the workers here
    compete for every live session in their Redis, and the session's shared one holds other tests' live sessions."""
    return module_redis


async def test_task_scores_rank_held_out_phantom_severities(
    bus: Bus, redis_server: RedisServer, sid: str, prebuilt: Prebuilds
) -> None:
    models, train_info = ranking_model.read(prebuilt.wait("ranking", timeout_s=1200))
    live = cuts(subjects(500, per_severity=2))  # 10 held-out subjects, 40 task clips
    scorer = ScorerWorker(scorer_settings(redis_server.url, models, consumer="rank"), bus)
    sessions: dict[str, tuple[PatientSpec, list[tuple[int, int, int]]]] = {}
    for spec, rep, first, n in live:
        sessions.setdefault(f"{sid}x{spec.seed}", (spec, []))[1].append((rep, first, n))
    async with running(tracker_worker(bus), scorer):
        for s, (spec, clips) in sessions.items():
            store = await open_session(bus, s, spec, FPS)
            stream = PhantomStream(bus, s, spec, FPS)
            last = max(first + n for _, first, n in clips)
            starts = {first: (rep, n) for rep, first, n in clips}
            for i in range(last):
                if i in starts:
                    rep, n = starts[i]
                    await store.event(s, "pfed5", "task_start", task="smile", rep=rep, seq=i)
                await stream.publish(i)
                for rep, first, n in clips:
                    if i == first + n - 1:
                        await store.event(s, "pfed5", "task_end", task="smile", rep=rep, seq=i)

            async def scored(s: str = s, clips: list[tuple[int, int, int]] = clips) -> bool:
                return len([x for x in await scores(bus, s) if x.kind == "task"]) >= len(clips)

            # the session ends once its task scores are in, as a patient's does: the workers let its leases go, so
            # the next session is taken at once (a worker holding k sessions waits k lease rounds for a free one)
            await wait_for(scored, 180, f"a task score for every live clip of {s}")
            assert await store.end(s, "completed")
    labels, values, raws, lengths = [], [], [], []
    for s, (spec, clips) in sessions.items():
        got = {x.rep: x for x in await scores(bus, s) if x.kind == "task"}
        ends = {w.rep: w for w in await windows(bus, s) if w.reason == "task_end"}
        assert sorted(got) == sorted(ends) == sorted(rep for rep, _, _ in clips), (s, sorted(got), sorted(ends))
        for rep, first, n in clips:
            score = got[rep]
            assert score.withheld == "" and score.score is not None and score.raw is not None, score.withheld
            assert (ends[rep].first_seq, ends[rep].last_seq) == (first, first + n - 1)
            labels.append(spec.severity)
            values.append(score.score)
            raws.append(score.raw)
            lengths.append(n)
    y = np.array(labels)
    rho = spearman(np.array(values), y)
    rho_raw = spearman(np.array(raws), y)
    rho_length = spearman(np.array(lengths, dtype=np.float64), y)
    report = {"model": rho, "model_raw": rho_raw, "clip_length": rho_length, **train_info}
    print("live task-score Spearman vs severity:", {k: round(v, 3) for k, v in report.items()})
    assert rho_length == pytest.approx(0.0, abs=1e-9)  # clip length cannot rank severity here
    assert rho > 0.6 and rho_raw > 0.6, report
    assert rho > abs(rho_length) + 0.5, report
