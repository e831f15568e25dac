"""Model speed: training steps/s, and ms per window for torch eager vs ONNX Runtime (CPU; CUDA when present), for
TraMP-Former and QAFE-Net; plus the numpy cost of drawing QAFE-Net's heatmaps per frame.

A "window" is what the live scorer runs every hop: cached per-frame RGB features + the family's other inputs
(trajectory + index_t, or heatmap images) -> score. Torch and ONNX Runtime run with the same number of CPU threads
(``--threads``, default 1: ``intra_op_num_threads`` on the ONNX Runtime side, ``torch.set_num_threads`` on the
other), so the ratio compares the runtimes and not their thread pools; on a shared 2-core machine one thread is also
the stable setting. Prints a table and, with ``--json PATH``, writes a flat JSON object:

* ``ort_speedup_vs_torch``: TraMP-Former torch eager ms / ONNX Runtime CPU ms per window at batch 1;
* ``qafe_ort_speedup_vs_torch``: the same for QAFE-Net;
* ``*ort_speedup_vs_torch_cpu_time``: the same ratio of CPU time (the calling thread's; one thread each), which a
  busy shared machine disturbs less than wall time;
* ``*ort_traced_ms_per_window``, ``*ort_folded_vs_traced_speedup[_cpu_time]``, ``*ort_[traced_]graph_nodes``: the
  graph as the TorchScript exporter traced it (its shape arithmetic on the fixed axes run on every call) against
  the exported graph with that arithmetic folded (:mod:`trainer.onnx_shapes`), side by side;
* ``load_average``: the machine's 1-minute load at the end (every figure is only as quiet as the machine was);
* ``*_ms_per_window``, ``*_training_steps_per_s``, ``heatmap_ms_per_frame`` and the ORT graph-optimisation levels;
* ``*ort_op_ms_<OpType>``: where ONNX Runtime's time goes, ms per window by operator type (its own profiler, the
  largest few), printed as a second table. On the small TraMP-Former window graph most of it is the partition
  attentions: MatMul, the bias Add, Transpose (window partitioning) and Softmax, each about a fifth.

    python -m benchmarks.model --quick --json out.json
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

# run as a script, this folder is sys.path[0] and its modules would hide the packages of the same name
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from common.heatmaps import HeatmapSpec, heatmap_frames
from common.manifest import Calibration
from trainer.bmc import bmc_loss
from trainer.export import WindowGraph, example_inputs, export_graph
from trainer.models import qafenet, trampformer
from trainer.models.families import FAMILIES

LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def _time(fn: Callable[[], object], reps: int) -> float:
    for _ in range(max(2, reps // 5)):
        fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps * 1000.0


def _time_pair(
    a: Callable[[], object], b: Callable[[], object], reps: int, rounds: int = 4
) -> tuple[float, float, float, float]:
    """Median ms per call of ``a`` and ``b``, timed in alternating blocks (a, b, a, b, ...) so that load from other
    processes on a shared machine falls on both alike. Each block starts with an untimed call. Returns wall-clock
    ms of a and b, then CPU ms of a and b (the calling thread's CPU time: with one thread per runtime, all of the
    call's work; it leaves out the time other processes held the core, so it varies less with the load)."""
    wall: tuple[list[float], list[float]] = ([], [])
    cpu: tuple[list[float], list[float]] = ([], [])
    per_block = max(2, reps // rounds)
    for _ in range(rounds):
        for k, fn in enumerate((a, b)):
            fn()
            for _ in range(per_block):
                t0, c0 = time.perf_counter(), time.thread_time()
                fn()
                cpu[k].append(time.thread_time() - c0)
                wall[k].append(time.perf_counter() - t0)
    return tuple(statistics.median(v) * 1000.0 for v in (*wall, *cpu))  # type: ignore[return-value]


def training_steps_per_s(model: nn.Module, batch: int, steps: int) -> float:
    inputs = example_inputs(model, batch)["clip"]
    label = torch.linspace(0, 4, batch)
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        loss = bmc_loss(model(*inputs.values()), label)
        optim.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optim.step()

    return 1000.0 / _time(step, steps)


def _session(path: Path, threads: int, level: str = "all", profile: Path | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = LEVELS[level]
    if profile is not None:  # ONNX Runtime writes its trace to <profile>_<date>.json
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


TOP_OPS = 6


def op_profile(path: Path, feeds: dict[str, np.ndarray], threads: int, runs: int, tmp: Path) -> dict[str, float]:
    """ms per window by ONNX operator type, from ONNX Runtime's profiler (its trace is written under ``tmp``)."""
    sess = _session(path, threads, profile=tmp / f"{path.stem}-profile")
    for _ in range(runs):
        sess.run(None, feeds)
    trace = json.loads(Path(sess.end_profiling()).read_text())
    per_op: Counter[str] = Counter()
    for event in trace:
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            per_op[str(event["args"]["op_name"])] += int(event["dur"])  # microseconds
    return {op: us / runs / 1000.0 for op, us in per_op.most_common(TOP_OPS)}


def window_figures(prefix: str, model: nn.Module, reps: int, threads: int, tmp: Path) -> dict[str, float]:
    """torch eager vs ONNX Runtime on the window graph at batch 1 (and the ORT optimisation levels, and the graph as
    traced, before its shape arithmetic is folded: the previous export, side by side)."""
    model.eval()
    window = WindowGraph(model, Calibration.identity(0.0, 4.0)).eval()  # the clamp is part of every window graph
    path, traced = tmp / f"{prefix}window.onnx", tmp / f"{prefix}window-traced.onnx"
    export_graph(window, example_inputs(model, 2)["window"], ["score", "raw"], path)
    export_graph(window, example_inputs(model, 2)["window"], ["score", "raw"], traced, fold_shapes=False)
    one = example_inputs(model, 1)["window"]
    feeds = {k: v.numpy() for k, v in one.items()}
    sess = _session(path, threads)
    out: dict[str, float] = {}
    with torch.no_grad():
        torch_ms, ort_ms, torch_cpu, ort_cpu = _time_pair(
            lambda: window(*one.values()), lambda: sess.run(None, feeds), reps
        )
        ref = window(*one.values())[0].numpy()
    out[f"{prefix}torch_eager_ms_per_window"] = torch_ms
    out[f"{prefix}ort_cpu_ms_per_window"] = ort_ms
    out[f"{prefix}ort_speedup_vs_torch"] = torch_ms / ort_ms
    out[f"{prefix}ort_speedup_vs_torch_cpu_time"] = torch_cpu / ort_cpu
    out[f"{prefix}ort_max_abs_diff"] = float(np.abs(sess.run(None, feeds)[0] - ref).max())
    old = _session(traced, threads)
    traced_ms, folded_ms, traced_cpu, folded_cpu = _time_pair(
        lambda: old.run(None, feeds), lambda: sess.run(None, feeds), reps
    )
    out[f"{prefix}ort_traced_ms_per_window"] = traced_ms
    out[f"{prefix}ort_folded_vs_traced_speedup"] = traced_ms / folded_ms
    out[f"{prefix}ort_folded_vs_traced_speedup_cpu_time"] = traced_cpu / folded_cpu
    out[f"{prefix}ort_graph_nodes"] = float(len(onnx.load(str(path)).graph.node))
    out[f"{prefix}ort_traced_graph_nodes"] = float(len(onnx.load(str(traced)).graph.node))
    basic, extended = _session(path, threads, "basic"), _session(path, threads, "extended")
    b_ms, e_ms, _, _ = _time_pair(lambda: basic.run(None, feeds), lambda: extended.run(None, feeds), reps)
    out[f"{prefix}ort_basic_ms_per_window"] = b_ms
    out[f"{prefix}ort_extended_ms_per_window"] = e_ms
    for op, ms in op_profile(path, feeds, threads, max(5, reps // 4), tmp).items():
        out[f"{prefix}ort_op_ms_{op}"] = ms
    if "CUDAExecutionProvider" in ort.get_available_providers():
        cuda = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider"])
        if cuda.get_providers()[0] != "CUDAExecutionProvider":
            raise click.ClickException("CUDA execution provider fell back to CPU")
        out[f"{prefix}ort_cuda_ms_per_window"] = _time(lambda: cuda.run(None, feeds), reps)
    if torch.cuda.is_available():
        gpu_window = WindowGraph(model.cuda(), Calibration.identity(0.0, 4.0)).eval()
        gpu_in = [v.cuda() for v in one.values()]

        def run_gpu() -> None:
            with torch.no_grad():
                gpu_window(*gpu_in)
            torch.cuda.synchronize()

        out[f"{prefix}torch_cuda_ms_per_window"] = _time(run_gpu, reps)
        model.cpu()
    return out


def heatmap_ms_per_frame(frames: int) -> float:
    rng = np.random.default_rng(0)
    lm = rng.integers(20, 236, size=(frames, 106, 2)).astype(np.float32)
    crops = rng.integers(0, 256, size=(frames, 256, 256, 3), dtype=np.uint8)
    spec = HeatmapSpec()
    heatmap_frames(lm[:2], crops[:2], spec)
    t0 = time.perf_counter()
    heatmap_frames(lm, crops, spec)
    return (time.perf_counter() - t0) / frames * 1000.0


@click.command()
@click.option("--size", type=click.Choice(sorted(trampformer.SIZES)), default="small", show_default=True)
@click.option("--threads", default=1, show_default=True, help="CPU threads for torch and ONNX Runtime alike")
@click.option("--quick", is_flag=True, help="fewer repetitions (< 60 s on an idle machine)")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def main(size: str, threads: int, quick: bool, json_path: Path | None) -> None:
    torch.manual_seed(0)
    reps = 20 if quick else 100
    steps = 3 if quick else 10
    default_threads = torch.get_num_threads()
    figures: dict[str, float] = {}
    tramp = trampformer.TrampFormer(trampformer.SIZES[size]())
    qafe = qafenet.QafeNet(qafenet.SIZES[size]())
    # The trainer's small/micro configs pin one torch thread; compare with two on the same machine and moment.
    for t in (1, 2):
        torch.set_num_threads(t)
        figures[f"training_steps_per_s_threads{t}"] = training_steps_per_s(tramp, 4, steps)
    figures["threads1_vs_threads2_speed"] = (
        figures["training_steps_per_s_threads1"] / figures["training_steps_per_s_threads2"]
    )
    torch.set_num_threads(threads)
    figures["training_steps_per_s"] = training_steps_per_s(tramp, 4, steps)
    figures["qafe_training_steps_per_s"] = training_steps_per_s(qafe, 4, steps)
    with tempfile.TemporaryDirectory() as tmp:
        figures.update(window_figures("", tramp, reps, threads, Path(tmp)))
        figures.update(window_figures("qafe_", qafe, reps, threads, Path(tmp)))
    torch.set_num_threads(default_threads)
    figures["heatmap_ms_per_frame"] = heatmap_ms_per_frame(8 if quick else 40)
    figures["load_average"] = os.getloadavg()[0]
    click.echo(f"'{size}' models ({', '.join(FAMILIES)}), batch 1, {threads} thread(s) for torch and ONNX Runtime")
    click.echo(f"{'figure':<36}{'value':>12}")
    for key, value in figures.items():
        if "_op_ms_" not in key:
            click.echo(f"{key:<36}{value:>12.3f}")
    click.echo(f"where ONNX Runtime's time goes (ms per window by operator type, its profiler; top {TOP_OPS}):")
    for name, prefix in (("TraMP-Former", ""), ("QAFE-Net", "qafe_")):
        ops = {k.split("_op_ms_")[1]: v for k, v in figures.items() if k.startswith(f"{prefix}ort_op_ms_")}
        click.echo(f"  {name:<14}" + "  ".join(f"{op} {ms:.2f}" for op, ms in ops.items()))
    for name, prefix in (("TraMP-Former", ""), ("QAFE-Net", "qafe_")):
        click.echo(
            f"{name}: ours (ONNX Runtime) vs reference (torch eager): {figures[prefix + 'ort_cpu_ms_per_window']:.2f} "
            f"ms vs {figures[prefix + 'torch_eager_ms_per_window']:.2f} ms = "
            f"{figures[prefix + 'ort_speedup_vs_torch']:.2f}x (CPU time: "
            f"{figures[prefix + 'ort_speedup_vs_torch_cpu_time']:.2f}x); folded shapes vs the traced graph "
            f"{figures[prefix + 'ort_folded_vs_traced_speedup']:.2f}x (CPU time "
            f"{figures[prefix + 'ort_folded_vs_traced_speedup_cpu_time']:.2f}x)"
        )
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
