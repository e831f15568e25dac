"""Scorer speed: windows with and without the per-frame feature cache, and how many live sessions one process serves.

Models: TraMP-Former with random weights (speed does not depend on them) in three sizes, exported by the trainer's
own export (cached across runs under ``--cache``, keyed by the model code, since exporting the paper model takes
minutes), run by the scorer's ONNX Runtime backend on this machine's CPU (or CUDA when ``--device cuda``):

- *paper*: the published shape (T_p 128, 80 RGB frames at 224): ``cache_speedup`` and ``paper_window_ms``;
- *small* (T_p 64, 16 RGB frames at 64 px, d 64): the per-window table and ``sessions_realtime_small``;
- *micro* at T_p 64 (8 RGB frames at 32 px, d 16): the size the product trains and serves on a CPU (the fair-phantom
  acceptance models, ``feqa train -c fair``, and the demo's), real time only: ``sessions_realtime_micro``. It is
  reported beside the small figure, never instead of it.

1. **Per window, batch 1 / 8 / 32, hop 8** (one call serves B windows of B sessions):
   - *cached* (what the scorer does): the frame graph on the 8 new frames of each window, then the window graph;
   - *uncached* (the plain reference path): the whole-clip graph on all of each window's RGB frames.
   Reported as windows/s and p50/p99 ms per call, side by side, in alternating rounds (noise hits both).
2. **Work around the graphs** per hop window: kinematics and model input by the per-observation path and by the
   scorer's per-frame rows (:mod:`scorer.frame_rows`), side by side in alternating rounds, and the RGB input.
3. **Real time** (small, then micro): N simulated 30 fps sessions, each with a hop window every 8 frames, scored by
   the scorer's own window pipeline (:class:`scorer.scoring.WindowScorer`: span, kinematics, model input, frame
   cache, micro-batcher) on observations and crops the tracker pipeline made from phantom video (Redis round trips
   not included). A session count is kept in real time when no window is superseded, every window's latency (the
   maximum) stays under two hop periods, the producer kept its 30 fps schedule (within one hop: a blocked event loop
   would slow the stream and hide the lag) and at most each session's first hop was withheld as too short; the
   figure is the largest such N tried. Superseded windows are also counted apart after the first second
   (``after 1 s``): those are a steady lag, not a slow start.

JSON keys (flat): ``cache_speedup`` (paper size, batch 1: ms per window uncached / cached), ``paper_window_ms``
(paper size, cached, batch 1, ms per window, p50), ``sessions_realtime_small`` (small model, hop 8),
``sessions_realtime_micro`` (micro model at T_p 64, hop 8), and every measured cell as
``<size>_<path>_b<B>_{windows_per_s,p50_ms,p99_ms}``, each real-time level tried as
``realtime_n<N>_{superseded,superseded_after_1s,max_ms,cpu_ms_per_window}`` (micro: ``micro_realtime_n<N>_...``),
the cached path's two calls apart as ``<size>_cached_b<B>_{frame,window}_graph_ms`` (medians, ms per call), the work
around the graphs per hop window (small model input) as ``python_plain_ms`` (per-observation path),
``python_rows_ms`` (the scorer's per-frame rows) and ``python_rgb_ms`` (RGB input of a hop's new crops),
``realtime_cpu_ms_per_window`` (this process's CPU time, all threads, per scored window at the busiest level run)
and ``sessions_cpu_bound_small`` (cores x 1000 ms over that CPU time per session-second: an upper bound from CPU
time alone, no latency rule, nothing else running), the same for micro (``micro_realtime_cpu_ms_per_window``,
``sessions_cpu_bound_micro``), plus ``load_average`` and ``load_average_end`` (the machine's load after the
per-window table and at the end: the figures are only as quiet as the machine was).

Rounds: every cell is a median over at least 5 timed rounds (the uncached paper clip, seconds per call, over 2 with
``--quick``, 3 without), after one untimed warm-up round; with ``--quick`` the paper model runs at batch 1 only.

    python benchmarks/scorer.py [--quick] [--json PATH] [--device cpu|cuda] [--cache DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from common.messages import Consent, Crop, Obs, SessionInfo, Window
from common.model_input import InputSpec, model_input, prepare_clip, rgb_input, sample
from common.protocols import get_protocol
from scorer.backends import BackendChoice
from scorer.frame_rows import FrameRows
from scorer.health import ScorerStats
from scorer.registry import LoadedModel, ModelRegistry
from scorer.scoring import WindowScorer, observed_clip, rows_clip, rows_kinematics, window_kinematics
from scorer.session import SessionState
from scorer.settings import ScorerSettings

HOP = 8
STREAM_FPS = 30.0
ROOT = Path(__file__).resolve().parents[1]


def _code_hash() -> str:
    h = hashlib.sha256()
    for path in sorted((ROOT / "trainer").rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


MICRO_T_P = 64
"""The acceptance and demo models (``feqa train -c fair``) are the micro size with a 64-frame trajectory."""


def artifact(size: str, cache: Path) -> Path:
    """The exported random-weight model of ``size`` (exported once, then reused); micro at T_p 64, as trained."""
    folder = cache / f"{_code_hash()}-{size}" / "pfed5" / "smile" / "1"
    if (folder / "manifest.json").is_file():
        return folder.parents[2]
    import torch

    from trainer.checkpoint import Checkpoint
    from trainer.export import export
    from trainer.models.trampformer import SIZES, TrampFormer

    print(f"exporting the {size} model once (cached in {cache}) ...", flush=True)
    torch.manual_seed(0)
    model = TrampFormer(SIZES[size](MICRO_T_P) if size == "micro" else SIZES[size]()).eval()
    scale = get_protocol("pfed5").scale
    ckpt = Checkpoint(family="tramp_former", model_config=model.cfg.to_dict(), state=model.state_dict(),
                      protocol="pfed5", task="smile", label_min=scale.min, label_max=scale.max, fps=25.0,
                      landmarker="phantom", epoch=0, val_spearman=float("nan"), data_hash="bench")  # fmt: skip
    export(ckpt, folder.parents[2], version="1", name=f"bench_{size}", require_calibration=False)
    return folder.parents[2]


def _stats(times: list[float], batch: int) -> dict[str, float]:
    arr = np.asarray(times) * 1000
    return {"windows_per_s": batch / (float(np.median(arr)) / 1000), "p50_ms": float(np.percentile(arr, 50)),
            "p99_ms": float(np.percentile(arr, 99))}  # fmt: skip


def per_window(model: LoadedModel, batches: list[int], reps: int, uncached_max_batch: int,
               uncached_reps: int) -> dict[str, Any]:  # fmt: skip
    """Time the cached and the uncached path per batch, in alternating rounds (the uncached path in the first
    ``uncached_reps`` of them: at paper size one call is seconds). The first round warms both up and is not counted.
    The cached path's two graph calls are also timed apart (``frame`` and ``window`` parts, medians)."""
    m = model.model
    spec = m.spec
    frame = m.frame
    clip = m.clip_backend()
    if frame is None or clip is None:
        raise SystemExit("the benchmark needs an artifact with frame, window and clip graphs")
    rng = np.random.default_rng(0)
    probe = np.zeros((1, 3, spec.rgb_size, spec.rgb_size), np.float32)
    feat_dim = int(frame.run({"frames": probe})["features"].shape[1])
    out: dict[str, Any] = {}
    for b in batches:
        new = rng.standard_normal((b * HOP, 3, spec.rgb_size, spec.rgb_size)).astype(np.float32)
        cached_feats = rng.standard_normal((b, spec.rgb_frames, feat_dim)).astype(np.float32)
        traj = (rng.standard_normal((b, spec.t_p, 63, 5)) * 20).astype(np.float32)
        index_t = np.broadcast_to(np.linspace(-1, 1, spec.t_p, dtype=np.float32), (b, spec.t_p)).copy()
        do_uncached = b <= uncached_max_batch
        clip_frames = (rng.standard_normal((b, spec.rgb_frames, 3, spec.rgb_size, spec.rgb_size)).astype(np.float32)
                       if do_uncached else None)  # fmt: skip
        times: dict[str, list[float]] = {"cached": [], "uncached": [], "frame_part": [], "window_part": []}
        for r in range(reps + 1):  # the first round warms up and is not counted
            t0 = time.perf_counter()
            feats = frame.run({"frames": new})["features"].reshape(b, HOP, -1)
            window_feats = np.concatenate([cached_feats[:, HOP:], feats], axis=1)
            t_mid = time.perf_counter()
            m.window.run({"frame_features": window_feats, "trajectory": traj, "index_t": index_t})
            t1 = time.perf_counter()
            if r:
                times["cached"].append(t1 - t0)
                times["frame_part"].append(t_mid - t0)
                times["window_part"].append(t1 - t_mid)
            if clip_frames is not None and r <= uncached_reps:
                t2 = time.perf_counter()
                clip.run({"frames": clip_frames, "trajectory": traj, "index_t": index_t})
                if r:
                    times["uncached"].append(time.perf_counter() - t2)
        out[f"cached_b{b}"] = _stats(times["cached"], b)
        out[f"parts_b{b}"] = {part: 1000 * float(np.median(times[f"{part}_part"])) for part in ("frame", "window")}
        if times["uncached"]:
            out[f"uncached_b{b}"] = _stats(times["uncached"], b)
    return out


# ---------------------------------------------------------------------------------------------- python side


def python_side(spec: InputSpec, base: tuple[list[Obs], list[Crop]], reps: int) -> dict[str, float]:
    """Per hop window, the work around the graphs, in alternating rounds on a 5 s task at 30 fps (150 frames, the
    last 2.5 s in the kinematics): the per-observation path (every observation of the span stacked and checked each
    window, the trajectory of the whole prepared clip) against the scorer's per-frame rows (each frame converted
    once: each round brings a hop of 8 new frames), and the RGB input of the 8 new crops (resize and normalise)."""
    obs = [dataclasses.replace(o, seq=i, capture_ts=1_700_000_000.0 + i / STREAM_FPS) for i, o in enumerate(base[0])]
    span, crops = obs[:150], [c.image for c in base[1][:HOP]]
    seen = span[-int(2.5 * STREAM_FPS) :]
    rows = FrameRows(4096)
    times: dict[str, list[float]] = {"plain": [], "rows": [], "rgb": []}
    for r in range(reps + 1):
        rows.forget_before(1 << 30)
        rows.span(span[:-HOP])  # the frames earlier windows converted
        t0 = time.perf_counter()
        window_kinematics(seen)
        prepared = prepare_clip(observed_clip(span), spec.fps)
        picked = sample(prepared.n_frames, spec, rgb="latest")
        np.ascontiguousarray(prepared.trajectory[picked.traj_idx])
        t1 = time.perf_counter()
        rows_kinematics(rows.span(seen))
        model_input(rows_clip(rows.span(span)), spec, rgb="latest")
        t2 = time.perf_counter()
        rgb_input(crops, spec)
        t3 = time.perf_counter()
        if r:
            for key, dt in (("plain", t1 - t0), ("rows", t2 - t1), ("rgb", t3 - t2)):
                times[key].append(dt)
    return {key: 1000 * float(np.median(v)) for key, v in times.items()}


# ---------------------------------------------------------------------------------------------- real time


def _base_observations(n: int) -> tuple[list[Obs], list[Crop]]:
    from phantom.spec import PatientSpec
    from tests.phantom_obs import observe  # the tracker pipeline on phantom frames (test helper, no Redis)

    seen = observe(PatientSpec(seed=2, protocol="pfed5", severity=1.0, reps=3, tasks=("smile",)), range(n),
                   fps=STREAM_FPS, crop_size=256)  # fmt: skip
    return seen.obs, seen.crops


async def realtime(model_dir: Path, choice: BackendChoice, sessions: int, seconds: float,
                   base: tuple[list[Obs], list[Crop]]) -> dict[str, float]:  # fmt: skip
    """Stream ``sessions`` sessions at 30 fps for ``seconds``; score every hop window as the worker does."""
    registry = ModelRegistry(model_dir, choice)
    registry.scan()
    settings = ScorerSettings()
    stats = ScorerStats()
    batcher = settings.batcher()
    scorer = WindowScorer(settings, registry, batcher, stats)
    obs, crops = base
    states = []
    for k in range(sessions):
        st = SessionState(f"b{k}", settings.obs_keep, settings.crops_keep, settings.features_keep)
        st.info = SessionInfo(sid=st.sid, patient_id="p", protocol="pfed5", consent=Consent(live_scoring=True),
                              state="live", source="webrtc", fps=STREAM_FPS, created_ts=0.0)  # fmt: skip
        states.append(st)
    pending: list[tuple[SessionState, Window, float]] = []
    latencies: list[float] = []
    superseded = 0
    superseded_late = 0  # superseded after the first second: a steady lag rather than a slow start
    withheld = 0
    produced = 0  # frames per session the producer got out; behind schedule means the loop could not keep up
    behind = 0.0  # the producer's largest lag behind its 30 fps schedule, seconds
    start_t = time.monotonic()
    cpu_start = time.process_time()  # this process's CPU time, all threads: less hostage to others than wall time
    stop = start_t + seconds
    task_len = int(5 * STREAM_FPS)

    async def produce() -> None:
        nonlocal produced, behind
        t0 = time.monotonic()
        seq = 0
        while time.monotonic() < stop:
            due = t0 + seq / STREAM_FPS
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            behind = max(behind, time.monotonic() - due)
            now = time.time()
            for k, st in enumerate(states):
                o = obs[(seq + 7 * k) % len(obs)]
                st.obs[seq] = dataclasses.replace(o, sid=st.sid, seq=seq, capture_ts=now)
                st.crops[seq] = crops[(seq + 7 * k) % len(crops)].image
                st.crops.move_to_end(seq)
                st._bound()
                if seq % HOP == HOP - 1:
                    start = seq // task_len * task_len
                    w = Window(sid=st.sid, protocol="pfed5", task="smile", rep=0, reason="hop", first_seq=start,
                               last_seq=seq, task_start_seq=start, created_ts=now, landmarker="phantom")  # fmt: skip
                    pending.append((st, w, time.monotonic()))
            seq += 1
            produced = seq

    async def consume() -> None:
        nonlocal superseded, superseded_late, withheld
        while time.monotonic() < stop or pending:
            if not pending:
                await asyncio.sleep(0.002)
                continue
            batch = list(pending)
            pending.clear()
            newest: dict[str, tuple[SessionState, Window, float]] = {}
            for item in batch:  # newest hop per session wins, as in the worker
                if item[0].sid in newest:
                    superseded += 1
                    superseded_late += newest[item[0].sid][2] - start_t > 1.0
                newest[item[0].sid] = item
            jobs = list(newest.values())
            results = await asyncio.gather(*(scorer.score(st, w) for st, w, _ in jobs))
            done = time.monotonic()
            for (st, w, t), res in zip(jobs, results, strict=True):
                if res.withheld not in ("", "short_window"):  # a task's first hop holds too few frames: fine
                    raise SystemExit(f"benchmark window withheld: {res.withheld}")
                withheld += bool(res.withheld)
                latencies.append(done - t)
                st.forget_before(w.task_start_seq)

    try:
        await asyncio.gather(produce(), consume())
        cpu_s = time.process_time() - cpu_start
    finally:
        batcher.close()
    lat = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    windows = len(latencies) + superseded
    return {"sessions": float(sessions), "windows": float(windows), "superseded": float(superseded),
            "superseded_after_1s": float(superseded_late),
            "withheld": float(withheld), "withheld_allowed": float(sessions * (produced // task_len + 1)),
            "frames": float(produced), "frames_due": float(int(seconds * STREAM_FPS)),
            "behind_ms": 1000 * behind, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max()),
            "cpu_ms_per_window": 1000 * cpu_s / max(1, len(latencies))}  # fmt: skip


def realtime_levels(model_dir: Path, choice: BackendChoice, levels: list[int], seconds: float,
                    base: tuple[list[Obs], list[Crop]]) -> tuple[int, list[dict[str, float]]]:  # fmt: skip
    """Run :func:`realtime` at each session count in turn until one is not kept; returns the largest kept and every
    level's row (the last one is the first not kept, unless all were)."""
    kept = 0
    rows = []
    for n in levels:
        row = asyncio.run(realtime(model_dir, choice, n, seconds, base))
        rows.append(row)
        # kept in real time: no window superseded, every window within two hops (max, not a percentile: no lag may
        # grow), the producer on its 30 fps schedule (a blocked event loop slows the stream and would hide the lag),
        # and the windows really scored (only a task's first hop may be withheld as too short)
        limit = 2000 * HOP / STREAM_FPS
        ok = (row["superseded"] == 0 and row["max_ms"] <= limit and row["behind_ms"] <= 1000 * HOP / STREAM_FPS
              and row["frames"] >= row["frames_due"] - 1 and row["withheld"] <= row["withheld_allowed"])  # fmt: skip
        if not ok:
            break
        kept = n
    return kept, rows


def _print_realtime(size: str, kept: int, rows: list[dict[str, float]], cpu_bound: float, cores: int) -> None:
    print(f"{size} model: {'sessions':>9}{'windows':>9}{'superseded':>12}{'after 1 s':>11}{'withheld':>10}{'frames':>8}"
          f"{'due':>6}{'behind ms':>11}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'cpu ms/w':>10}")  # fmt: skip
    for row in rows:
        print(f"{'':<{len(size) + 7}} {row['sessions']:>9.0f}{row['windows']:>9.0f}{row['superseded']:>12.0f}"
              f"{row['superseded_after_1s']:>11.0f}{row['withheld']:>10.0f}"
              f"{row['frames']:>8.0f}{row['frames_due']:>6.0f}{row['behind_ms']:>11.1f}{row['p50_ms']:>9.1f}"
              f"{row['p99_ms']:>9.1f}{row['max_ms']:>9.1f}{row['cpu_ms_per_window']:>10.1f}")  # fmt: skip
    print(f"30-fps sessions kept in real time ({size}, hop {HOP}): {kept}{' (target >= 16)' if size == 'small' else ''}"
          f"; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"CPU time per scored window, all threads, at {rows[-1]['sessions']:.0f} sessions: "
          f"{rows[-1]['cpu_ms_per_window']:.1f} ms, so {cores} idle cores could carry at most {cpu_bound:.1f} sessions "
          "(CPU time alone, no latency rule)", flush=True)  # fmt: skip


Cell = tuple[str, str, int, dict[str, float]]
Plan = dict[str, tuple[list[int], int, int, int]]


def _print_windows(args: argparse.Namespace, figures: dict[str, float], table: list[Cell],
                   ms: dict[tuple[str, str, int], float], plan: Plan) -> None:  # fmt: skip
    print(f"scorer per-window cost, hop {HOP}, {args.device}, {os.cpu_count()} cores, {args.threads} thread(s) per "
          f"call, load average {figures['load_average']}")  # fmt: skip
    print(f"{'model':<7}{'path':<10}{'batch':>6}{'windows/s':>11}{'p50 ms':>10}{'p99 ms':>10}{'ms/window':>11}")
    for size, path, b, st in sorted(table, key=lambda r: (r[0], r[2], r[1])):
        print(f"{size:<7}{path:<10}{b:>6}{st['windows_per_s']:>11.2f}{st['p50_ms']:>10.1f}{st['p99_ms']:>10.1f}"
              f"{ms[(size, path, b)]:>11.1f}")  # fmt: skip
    for size, (batches, _, _, uncached_max) in plan.items():
        for b in batches:
            if b > uncached_max:
                frames = b * (80 if size == "paper" else 40)
                print(f"{size:<7}{'uncached':<10}{b:>6}   not run: {frames} frames per call, minutes on this CPU")
    print(f"cache speedup (paper, batch 1, uncached / cached ms per window): {figures['cache_speedup']:.2f}x "
          "(target >= 5)")  # fmt: skip
    print(f"paper window, cached, batch 1: {figures['paper_window_ms']:.1f} ms (target <= 80) = frame graph on "
          f"{HOP} new frames {figures['paper_cached_b1_frame_graph_ms']:.1f} ms + window graph "
          f"{figures['paper_cached_b1_window_graph_ms']:.1f} ms", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and shorter runs (< 60 s once exported)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures as a flat JSON object")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per call (the scorer's default: 1)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "feqa-bench-models",
                    help="where the exported benchmark models are kept between runs")  # fmt: skip
    args = ap.parse_args()
    choice = BackendChoice(device=args.device, intra_op_threads=args.threads)
    quick = args.quick
    dirs = {size: artifact(size, args.cache) for size in ("small", "paper", "micro")}
    figures: dict[str, float] = {}
    table: list[Cell] = []
    plan = {  # size: (batches, timed rounds, timed uncached rounds, largest batch the uncached path runs at)
        "small": ([1, 8, 32], 5 if quick else 10, 5 if quick else 10, 32),
        "paper": ([1] if quick else [1, 8, 32], 5 if quick else 7, 2 if quick else 3, 1 if quick else 8),
    }
    for size, (batches, reps, uncached_reps, uncached_max) in plan.items():
        reg = ModelRegistry(dirs[size], choice)
        model = reg.scan()["pfed5/smile"]
        cells = per_window(model, batches, reps, uncached_max, uncached_reps)
        for key, st in cells.items():
            path, b = key.split("_b")
            if path == "parts":  # the cached path's frame graph and window graph calls, ms per call
                for part, value in st.items():
                    figures[f"{size}_cached_b{b}_{part}_graph_ms"] = round(value, 2)
                continue
            table.append((size, path, int(b), st))
            for name, value in st.items():
                figures[f"{size}_{path}_b{b}_{name}"] = round(value, 3)
    ms = {(s, p, b): 1000 * b / st["windows_per_s"] / b for s, p, b, st in table}  # median ms per call / B windows
    figures["cache_speedup"] = round(ms[("paper", "uncached", 1)] / ms[("paper", "cached", 1)], 3)
    figures["paper_window_ms"] = round(ms[("paper", "cached", 1)], 2)
    figures["load_average"] = round(os.getloadavg()[0], 2)
    _print_windows(args, figures, table, ms, plan)
    base = _base_observations(240)
    small_spec = ModelRegistry(dirs["small"], choice).scan()["pfed5/smile"].model.spec
    py = python_side(small_spec, base, 10 if quick else 30)
    figures.update({"python_plain_ms": round(py["plain"], 2), "python_rows_ms": round(py["rows"], 2),
                    "python_rgb_ms": round(py["rgb"], 2)})  # fmt: skip
    print(
        f"work around the graphs per hop window (small model input, load average {os.getloadavg()[0]:.2f}): "
        f"per-observation path {py['plain']:.2f} ms, per-frame rows {py['rows']:.2f} ms "
        f"({py['plain'] / py['rows']:.1f}x), RGB input of {HOP} new crops {py['rgb']:.2f} ms",
        flush=True,
    )
    levels = [1, 2, 4, 8, 16] if quick else [1, 2, 4, 6, 8, 12, 16, 24, 32]
    cores = len(os.sched_getaffinity(0))
    for size, prefix in (("small", ""), ("micro", "micro_")):
        kept, rt_rows = realtime_levels(dirs[size], choice, levels + ([24, 32] if quick and size == "micro" else []),
                                        3.0 if quick else 8.0, base)  # fmt: skip
        for row in rt_rows:
            for name in ("superseded", "superseded_after_1s", "max_ms", "cpu_ms_per_window"):
                figures[f"{prefix}realtime_n{row['sessions']:.0f}_{name}"] = round(row[name], 1)
        figures[f"sessions_realtime_{size}"] = float(kept)
        # an upper bound from CPU time alone at the busiest level run (its windows were all scored): what this
        # machine's cores could carry if nothing else ran on them and latency were no object; not the real-time figure
        cpu_ms = rt_rows[-1]["cpu_ms_per_window"]
        figures[f"{prefix}realtime_cpu_ms_per_window"] = round(cpu_ms, 2)
        figures[f"sessions_cpu_bound_{size}"] = round(cores * 1000 / (cpu_ms * STREAM_FPS / HOP), 1)
        _print_realtime(size, kept, rt_rows, figures[f"sessions_cpu_bound_{size}"], cores)
    figures["load_average_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
