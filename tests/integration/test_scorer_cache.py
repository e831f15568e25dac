"""The per-frame feature cache gives the scores of the uncached whole-clip graph (<= 1e-4), computes each frame once
and reuses it across windows; and the dataset path and the live path feed a model identical inputs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from common.messages import Window
from common.model_input import InputSpec, model_input
from phantom.spec import PatientSpec
from scorer.backends import BackendChoice
from scorer.batching import MicroBatcher
from scorer.health import ScorerStats
from scorer.registry import ModelRegistry
from scorer.scoring import WindowScorer, observed_clip
from scorer.settings import ScorerSettings
from tests.model_artifacts import LANDMARKER, copy_artifact
from tests.phantom_obs import observe, scoring_session

pytestmark = pytest.mark.integration
FPS = 25.0
N = 60


@pytest.fixture(scope="module")
def artifact(random_artifact: Path) -> Path:
    return random_artifact


def _window(reason: str, last: int) -> Window:
    return Window(sid="c", protocol="pfed5", task="smile", rep=0, reason=reason, first_seq=0, last_seq=last,
                  task_start_seq=0, created_ts=time.time(), landmarker=LANDMARKER)  # fmt: skip


@pytest.mark.prebuilt("random-artifact")
async def test_cached_frame_features_score_like_the_uncached_clip_graph(artifact: Path, tmp_path: Path) -> None:
    copy_artifact(artifact, tmp_path, version="1")
    registry = ModelRegistry(tmp_path, BackendChoice(intra_op_threads=1))
    model = registry.scan()["pfed5/smile"]
    spec: InputSpec = model.model.spec
    seen = observe(PatientSpec(seed=3, protocol="pfed5", severity=2.0, reps=1, tasks=("smile",)), range(N), fps=FPS,
                   sid="c")  # fmt: skip
    state = scoring_session(seen, "c", FPS)
    batcher = MicroBatcher(8, 0.001)
    stats = ScorerStats()
    scorer = WindowScorer(ScorerSettings(), registry, batcher, stats)
    clip_graph = model.model.clip_backend()
    assert clip_graph is not None
    windows = [_window("hop", last) for last in range(15, N, 4)] + [_window("task_end", N - 1)]
    used: set[int] = set()
    try:
        for w in windows:
            got = await scorer.score(state, w)
            assert got.withheld == "" and got.score is not None and got.raw is not None
            span = state.span(0, w.last_seq)
            rule = "uniform" if w.reason == "task_end" else "latest"
            seqs = [o.seq for o in span]
            mi = model_input(observed_clip(span), spec, lambda rows, q=seqs: [state.crops[q[int(r)]] for r in rows],
                             rgb=rule)  # fmt: skip
            assert mi.frames is not None
            ref = clip_graph.run({"frames": mi.frames[None], "trajectory": mi.trajectory[None],
                                  "index_t": mi.index_t[None]})  # fmt: skip
            assert abs(got.score - float(ref["score"][0])) <= 1e-4 and abs(got.raw - float(ref["raw"][0])) <= 1e-4
            used.update(span[int(r)].seq for r in mi.rgb_rows)
    finally:
        batcher.close()
    # every frame's feature was computed once, however many windows used it
    assert stats.counters["frames_computed"] == len(used)
    assert stats.counters["frames_reused"] >= len(windows) * spec.rgb_frames - len(used) > 0


async def test_the_dataset_path_and_the_live_path_give_identical_model_inputs(tmp_path: Path) -> None:
    """The same phantom clip through the trainer's dataset code (source video landmarked by the tracker pipeline,
    feature cache, evaluation item) and through the live code (the tracker's observations and crops, the scorer's
    clip): identical trajectory, index_t and RGB frames, bit for bit."""
    import av

    from phantom.face import Phantom
    from phantom.video import save_truth, sidecar_path, truth_table
    from tests.phantom_obs import Observed
    from tracker.settings import TrackerSettings
    from trainer.data.cache import build_cache
    from trainer.data.landmarking import VideoLandmarking
    from trainer.data.layouts import ClipRecord
    from trainer.data.samples import ClipSamples, SampleSpec
    from trainer.models.formerdfer import IMAGENET_MEAN, IMAGENET_STD

    spec = PatientSpec(seed=4, protocol="pfed5", severity=1.0, reps=1, tasks=("smile",))
    ph = Phantom(spec, 320, 240, FPS)
    n = ph.n_frames
    video = tmp_path / "clip.mkv"
    with av.open(str(video), "w") as container:  # lossless, so both paths decode the same pixels
        stream = container.add_stream("ffv1", rate=int(FPS))
        stream.width, stream.height, stream.pix_fmt = 320, 240, "bgr0"
        for i in range(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(ph.render(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    save_truth(truth_table(ph, range(n)), sidecar_path(video))
    sizes = SampleSpec(t_p=16, rgb_frames=8, image_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD, train=False, fps=FPS)
    record = ClipRecord("clip", "001", "smile", 1.0, n, None, None, None, "test", video=video)
    landmarking = VideoLandmarking(TrackerSettings(landmarker="phantom"))
    result = build_cache([record], tmp_path / "cache", 36, "video", lambda: landmarking, model_size=32, fps=FPS)
    item = ClipSamples(result.clips, sizes)[0]
    frames, traj, index_t = item["frames"], item["trajectory"], item["index_t"]
    # live: decode the same file, run the frames through the tracker pipeline, build the scorer's clip
    decoded = []
    with av.open(str(video)) as container:
        for frame in container.decode(container.streams.video[0]):
            decoded.append(np.asarray(frame.to_ndarray(format="rgb24")))
    live: Observed = observe(spec, range(n), fps=FPS, sid="live", frames=decoded)
    crops = {c.seq: c.image for c in live.crops}
    mi = model_input(
        observed_clip(live.obs), sizes.input_spec(), lambda rows: [crops[live.obs[int(r)].seq] for r in rows]
    )
    assert mi.frames is not None
    np.testing.assert_array_equal(traj.numpy(), mi.trajectory)
    np.testing.assert_array_equal(index_t.numpy(), mi.index_t)
    np.testing.assert_array_equal(frames.numpy(), mi.frames)
