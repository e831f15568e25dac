"""The scorer serves a TraMP-Former trained without its RGB stream (``model.rgb = false``): found by the registry,
scored from observations alone (the session holds no crops), equal to its whole-clip graph on the same trajectory,
and no frame feature is ever computed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from common.messages import Window
from common.model_input import model_input
from phantom.spec import PatientSpec
from scorer.backends import BackendChoice
from scorer.batching import MicroBatcher
from scorer.health import ScorerStats
from scorer.registry import ModelRegistry
from scorer.scoring import WindowScorer, observed_clip
from scorer.settings import ScorerSettings
from tests.model_artifacts import LANDMARKER, TRAJECTORY_ONLY
from tests.phantom_obs import observe, scoring_session
from tests.prebuild import Prebuilds

pytestmark = [pytest.mark.integration, pytest.mark.prebuilt("random-artifact")]
FPS = 25.0
N = 60


@pytest.fixture(scope="module")
def models(prebuilt: Prebuilds) -> Path:
    """A random-weight trajectory-only micro model exported by the build ``random-artifact``
    (tests/model_artifacts.py: ``export_trajectory_only``)."""
    return prebuilt.wait("random-artifact", timeout_s=600) / TRAJECTORY_ONLY


async def test_windows_are_scored_without_crops_like_the_clip_graph(models: Path) -> None:
    registry = ModelRegistry(models, BackendChoice(intra_op_threads=1))
    model = registry.scan()["pfed5/smile"]
    assert model.model.frame is None and not model.manifest.reads_frames
    seen = observe(PatientSpec(seed=5, protocol="pfed5", severity=3.0, reps=1, tasks=("smile",)), range(N), fps=FPS,
                   sid="t")  # fmt: skip
    state = scoring_session(seen, "t", FPS, crops=False)  # observations only: no crops reach this session
    batcher = MicroBatcher(8, 0.001)
    stats = ScorerStats()
    scorer = WindowScorer(ScorerSettings(), registry, batcher, stats)
    clip_graph = model.model.clip_backend()
    assert clip_graph is not None
    raws = []
    try:
        for last, reason in [(last, "hop") for last in range(15, N, 8)] + [(N - 1, "task_end")]:
            w = Window(sid="t", protocol="pfed5", task="smile", rep=0, reason=reason, first_seq=0, last_seq=last,
                       task_start_seq=0, created_ts=time.time(), landmarker=LANDMARKER)  # fmt: skip
            got = await scorer.score(state, w)
            assert got.withheld == "" and got.score is not None and got.raw is not None
            mi = model_input(observed_clip(state.span(0, last)), model.model.spec)
            ref = clip_graph.run({"trajectory": mi.trajectory[None], "index_t": mi.index_t[None]})
            assert abs(got.score - float(ref["score"][0])) <= 1e-4 and abs(got.raw - float(ref["raw"][0])) <= 1e-4
            raws.append(got.raw)
    finally:
        batcher.close()
    assert len(set(raws)) > 1  # the windows hold different movement, and the score follows it
    assert stats.counters.get("frames_computed", 0) == 0 and stats.counters.get("frames_reused", 0) == 0
