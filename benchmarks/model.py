"""TraMP-Former speed: training steps/s, and ms per window for torch eager vs ONNX Runtime (CPU; CUDA when present).

A "window" is what the live scorer runs every hop: cached per-frame RGB features + trajectory + index_t -> score.
Prints a table and, with ``--json PATH``, writes a flat JSON object (``ort_speedup_vs_torch`` = torch eager ms /
ONNX Runtime CPU ms at batch 1).

    python -m benchmarks.model --quick --json out.json
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
import onnxruntime as ort
import torch

# run as a script, this folder is sys.path[0] and its modules would hide the packages of the same name
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from common.manifest import Calibration
from trainer.bmc import bmc_loss
from trainer.export import WindowGraph, example_inputs, export_graph
from trainer.models.trampformer import SIZES, TrampFormer


def _time(fn: object, reps: int) -> float:
    call = fn  # a zero-argument callable
    for _ in range(max(2, reps // 5)):
        call()  # type: ignore[operator]
    t0 = time.perf_counter()
    for _ in range(reps):
        call()  # type: ignore[operator]
    return (time.perf_counter() - t0) / reps * 1000.0


def _time_pair(a: Callable[[], object], b: Callable[[], object], reps: int, rounds: int = 4) -> tuple[float, float]:
    """Median ms per call of ``a`` and ``b``, timed in alternating blocks (a, b, a, b, ...) so that load from other
    processes on a shared machine falls on both alike. Each block starts with an untimed call, so neither pays for
    the other's thread pool winding down (interleaving single calls would)."""
    ta: list[float] = []
    tb: list[float] = []
    per_block = max(2, reps // rounds)
    for _ in range(rounds):
        for fn, out in ((a, ta), (b, tb)):
            fn()
            for _ in range(per_block):
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
    return statistics.median(ta) * 1000.0, statistics.median(tb) * 1000.0


def training_steps_per_s(model: TrampFormer, batch: int, steps: int) -> float:
    inputs = example_inputs(model, batch)["clip"]
    label = torch.linspace(0, 4, batch)
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        loss = bmc_loss(model(*inputs.values()), label)
        optim.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optim.step()

    ms = _time(step, steps)
    return 1000.0 / ms


@click.command()
@click.option("--size", type=click.Choice(sorted(SIZES)), default="small", show_default=True)
@click.option("--quick", is_flag=True, help="fewer repetitions (< 60 s)")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None)
def main(size: str, quick: bool, json_path: Path | None) -> None:
    torch.manual_seed(0)
    model = TrampFormer(SIZES[size]())
    reps = 20 if quick else 100
    steps = 3 if quick else 10
    figures: dict[str, float] = {"training_steps_per_s": training_steps_per_s(model, 4, steps)}
    # The trainer's small/micro configs pin one torch thread; compare with two on the same machine and moment.
    default_threads = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        figures[f"training_steps_per_s_threads{threads}"] = training_steps_per_s(model, 4, steps)
    torch.set_num_threads(default_threads)
    figures["threads1_vs_threads2_speed"] = (
        figures["training_steps_per_s_threads1"] / figures["training_steps_per_s_threads2"]
    )
    model.eval()
    identity = Calibration.identity(0.0, 4.0)  # the calibration's clamp is part of every exported window graph
    window = WindowGraph(model, identity).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "window.onnx"
        export_graph(window, example_inputs(model, 2)["window"], ["score", "raw"], path)
        one = example_inputs(model, 1)["window"]
        feeds = {k: v.numpy() for k, v in one.items()}
        opts = ort.SessionOptions()
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        with torch.no_grad():
            torch_ms, ort_ms = _time_pair(lambda: window(*one.values()), lambda: sess.run(None, feeds), reps)
        figures["torch_eager_ms_per_window"] = torch_ms
        figures["ort_cpu_ms_per_window"] = ort_ms
        with torch.no_grad():
            ref = window(*one.values())[0].numpy()
        figures["ort_max_abs_diff"] = float(np.abs(sess.run(None, feeds)[0] - ref).max())
        if "CUDAExecutionProvider" in ort.get_available_providers():
            cuda = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider"])
            if cuda.get_providers()[0] != "CUDAExecutionProvider":
                raise click.ClickException("CUDA execution provider fell back to CPU")
            figures["ort_cuda_ms_per_window"] = _time(lambda: cuda.run(None, feeds), reps)
        if torch.cuda.is_available():
            gpu_window = WindowGraph(model.cuda(), identity)
            gpu_in = [v.cuda() for v in one.values()]

            def run_gpu() -> None:
                with torch.no_grad():
                    gpu_window(*gpu_in)
                torch.cuda.synchronize()

            figures["torch_cuda_ms_per_window"] = _time(run_gpu, reps)
    figures["ort_speedup_vs_torch"] = figures["torch_eager_ms_per_window"] / figures["ort_cpu_ms_per_window"]
    click.echo(f"TraMP-Former '{size}', batch 1, {torch.get_num_threads()} torch threads")
    click.echo(f"{'figure':<28}{'value':>12}")
    for key, value in figures.items():
        click.echo(f"{key:<28}{value:>12.3f}")
    click.echo(
        f"ours (ONNX Runtime) vs reference (torch eager): "
        f"{figures['ort_cpu_ms_per_window']:.2f} ms vs {figures['torch_eager_ms_per_window']:.2f} ms "
        f"= {figures['ort_speedup_vs_torch']:.2f}x"
    )
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
