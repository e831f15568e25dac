"""Task scores rank phantom severities: a micro TraMP-Former trained in this test on phantom smiles (by the trainer's
own dataset, training, calibration and export code), then live phantom sessions of held-out subjects streamed
through ingest's frame pump, the tracker (phantom ground-truth landmarker, a test-only oracle) and the scorer.

The data are fair by construction: every clip starts a few frames (2-4, drawn alike for every severity) before the
phantom's own movement onset, so the onset delay (which the phantom still ties to severity) is cut away, and every
severity gets exactly the same multiset of clip lengths, so clip length (and the absolute ``index_t`` it drives)
has zero rank correlation with severity. The model's Spearman is reported beside that clip-length baseline and a
constant one, on the same live clips, and must beat them.

Training runs in a child process (this file run as a script) with a fixed seed (``train.seed=0``) and a fixed
``PYTHONHASHSEED``: training is not yet bit-reproducible across hash seeds (one CI run scored Spearman 0.36 where
others passed), so without that the test's outcome was a draw of the test process's hash seed. With both fixed it
trains one model, and the live ranking must clear the bar by a margin measured for that model (see ``HASH_SEED``).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.bus import Bus
from infra.redis_server import RedisServer
from phantom.face import Phantom
from phantom.spec import PatientSpec
from phantom.video import write_video
from scorer.worker import ScorerWorker
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
from tracker.settings import TrackerSettings
from trainer import checkpoint
from trainer.checkpoint import BEST
from trainer.config import resolve
from trainer.data.cache import build_cache
from trainer.data.dataset import ExpressionData
from trainer.data.landmarking import VideoLandmarking
from trainer.data.layouts import ClipRecord
from trainer.export import export
from trainer.metrics import spearman
from trainer.train import train_expression

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]
FPS = 8.0
SEVERITIES = (0, 1, 2, 3, 4)
LENGTHS = (12, 14, 16, 18)  # frames; every severity gets each length equally often
CLIPS = 4  # clips per subject, one per repetition (a fifth repetition is left as a tail)
LEADS = (2, 3, 4)  # frames before the movement onset
HASH_SEED = "0"  # the training child's PYTHONHASHSEED


def _onsets(ph: Phantom) -> list[int]:
    """The first frame of each repetition's movement (phase ``onset``)."""
    out = []
    for seg in ph.schedule:
        out.append(next(i for i in range(seg.start, seg.end) if ph.truth(i).phase == "onset"))
    return out


def _subjects(first_seed: int, per_severity: int) -> list[PatientSpec]:
    specs = []
    for k, sev in itertools.product(range(per_severity), SEVERITIES):
        specs.append(PatientSpec(seed=first_seed + 10 * k + sev, protocol="pfed5", severity=float(sev), reps=CLIPS + 1,
                                 tasks=("smile",), head_motion=0.0))  # fmt: skip
    return specs


def _cuts(specs: list[PatientSpec]) -> list[tuple[PatientSpec, int, int, int]]:
    """(subject, repetition, first frame, frames) per clip: lengths and leads cycle within each severity. The
    longest clip ends before its repetition does, so clips never overlap."""
    count: dict[float, int] = {}
    out = []
    for spec in specs:
        ph = Phantom(spec, 320, 240, FPS)
        for rep, onset in list(enumerate(_onsets(ph)))[:CLIPS]:
            k = count[spec.severity] = count.get(spec.severity, -1) + 1
            out.append((spec, rep, onset - LEADS[k % len(LEADS)], LENGTHS[k % len(LENGTHS)]))
    return out


def _train(tmp_path: Path) -> tuple[Path, dict[str, float]]:
    specs = _subjects(100, per_severity=4)  # 20 subjects, 4 clips each
    records = []
    for spec, rep, first, n in _cuts(specs):
        video = tmp_path / "videos" / f"s{spec.seed}.mp4"
        if not video.is_file():
            video.parent.mkdir(parents=True, exist_ok=True)
            write_video(Phantom(spec, 320, 240, FPS), video)
        records.append(ClipRecord(f"s{spec.seed}r{rep}", f"{spec.seed}", "smile", spec.severity, n, None, None, None,
                                  "train", video=video, video_start=first, video_end=first + n))  # fmt: skip
    cfg = resolve(["micro"], [f"data.fps={FPS}", "optim.epochs=12", "train.seed=0"])
    landmarking = VideoLandmarking(TrackerSettings(landmarker="phantom"))
    cached = build_cache(records, tmp_path / "cache", cfg.data.load_size, "video", lambda: landmarking,
                         model_size=32, fps=FPS)  # fmt: skip
    assert len(cached.clips) == len(records), cached.skipped
    val_subjects = {str(s.seed) for s in specs[: len(SEVERITIES)]}  # one subject of each severity
    train = [c for c in cached.clips if c.record.subject not in val_subjects]
    val = [c for c in cached.clips if c.record.subject in val_subjects]
    torch.set_num_threads(1)
    result = train_expression(cfg, ExpressionData("smile", train, val, []), tmp_path / "run", resume=False)
    ckpt = checkpoint.read(tmp_path / "run" / BEST)
    models = tmp_path / "models"
    export(ckpt, models, version="1")
    return models, {"val_spearman": result.best_val_spearman}


def _train_in_child(tmp_path: Path) -> tuple[Path, dict[str, float]]:
    """:func:`_train` in a child process whose string hashing is fixed (``PYTHONHASHSEED=HASH_SEED``)."""
    out = tmp_path / "trained.json"
    env = {**os.environ, "PYTHONHASHSEED": HASH_SEED, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(tmp_path), str(out)], env=env,
                          capture_output=True, timeout=1200)  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode(errors="replace")[-4000:]
    trained = json.loads(out.read_text())
    return Path(trained["models"]), trained["info"]


async def test_task_scores_rank_held_out_phantom_severities(
    bus: Bus, redis_server: RedisServer, sid: str, tmp_path: Path
) -> None:
    models, train_info = _train_in_child(tmp_path)
    live = _cuts(_subjects(500, per_severity=2))  # 10 held-out subjects, 40 task clips
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

        async def all_scored() -> bool:
            for s, (_, clips) in sessions.items():
                if len([x for x in await scores(bus, s) if x.kind == "task"]) < len(clips):
                    return False
            return True

        await wait_for(all_scored, 180, "a task score for every live clip")
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


if __name__ == "__main__":  # the training child: python test_scorer_ranking.py WORK_DIR RESULT_JSON
    trained_models, info = _train(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps({"models": str(trained_models), "info": info}))
