"""The demo models' first-run training spread over processes: one task per process, up to one process per CPU.

Each task's training (:func:`infra.demo_models.train_demo_models`: render its phantom clips, landmark them, train,
export) is independent of the others and single-threaded (torch and ONNX Runtime on one thread each), so on a
2-core machine two tasks at a time take about half the wall time of one after the other. The children write to
distinct artifact folders (``models/demo/pfed5/<task>/``) and their own temporary work folders. Their own progress
bars are turned off (several processes would draw over each other); this process shows one bar over the tasks and
a line per finished task. With one worker, or one task, the training runs here as before (with its bars).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from infra.demo_models import DemoTraining, train_demo_models


def default_workers(tasks: int) -> int:
    """One process per CPU, never more than the tasks."""
    return max(1, min(tasks, os.cpu_count() or 1))


def _train_one(models: Path, mediapipe_dir: Path, cfg: DemoTraining) -> tuple[dict[str, float], float, float]:
    """One task's training in a child: its Spearman, wall seconds and this process's CPU seconds."""
    t0, cpu0 = time.monotonic(), time.process_time()
    return train_demo_models(models, mediapipe_dir, cfg), time.monotonic() - t0, time.process_time() - cpu0


def train_parallel(
    models: Path,
    mediapipe_dir: Path,
    cfg: DemoTraining,
    tasks: tuple[str, ...],
    workers: int,
    echo: Callable[[str], None],
) -> dict[str, float]:
    """Train ``tasks`` in up to ``workers`` processes; each task's validation Spearman. A failing task stops the
    rest and its error is raised here."""
    if workers <= 1 or len(tasks) <= 1:
        return train_demo_models(models, mediapipe_dir, dataclasses.replace(cfg, tasks=tasks))
    out: dict[str, float] = {}
    context = multiprocessing.get_context("spawn")  # no forked copy of this process's threads and sockets
    with (
        concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool,
        tqdm(total=len(tasks), desc=f"demo models ({workers} at a time)", unit="task") as bar,
    ):
        # tqdm takes TQDM_DISABLE from the environment when it is imported: the children, started by the first
        # submit, inherit it; this process imported tqdm already, so its own bar stays.
        before = os.environ.get("TQDM_DISABLE")
        os.environ["TQDM_DISABLE"] = "1"
        try:
            futures = {pool.submit(_train_one, models, mediapipe_dir, cfg.for_task(t)): t for t in tasks}
        finally:
            if before is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = before
        try:
            for done in concurrent.futures.as_completed(futures):
                got, took, cpu = done.result()
                out.update(got)
                bar.update(1)
                task = futures[done]
                echo(f"  {task} trained in {took:.0f} s ({cpu:.0f} s of CPU)")
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return {t: out[t] for t in tasks if t in out}
