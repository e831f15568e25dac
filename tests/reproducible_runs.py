"""The reproducibility test's two trainings (tests/integration/test_trainer_reproducible.py): one config and one
phantom dataset, trained by ``feqa train`` in two processes with different ``PYTHONHASHSEED`` (so any set or dict of
strings iterates differently), each building its own feature cache. Both run at once (each on one thread).

``python -m tests.reproducible_runs FOLDER`` is the build (tests/prebuild.py): the runs in ``FOLDER/run1`` and
``FOLDER/run2``, each with its ``train.log``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from phantom.dataset import write_pfed5
from tests.prebuild import finished

FPS = 5.0
EPOCHS = 3
HASH_SEEDS = ("1", "2")


def run_dirs(folder: Path) -> list[Path]:
    return [folder / f"run{k}" for k in range(1, len(HASH_SEEDS) + 1)]


def _train_args(dataset: Path, run: Path) -> list[str]:
    args = [sys.executable, "-c", "from trainer.cli import cli; cli()", "train", "-c", "micro", "--run-dir", str(run)]
    for item in (f'data.root="{dataset}"', 'data.expressions=["smile"]', f"data.fps={FPS}", f"optim.epochs={EPOCHS}",
                 f'data.cache_dir="{run / "cache"}"'):  # fmt: skip
        args += ["--set", item]
    return args


def build(folder: Path) -> None:
    dataset = write_pfed5(folder / "data", n_subjects=12, clips_per_task=2, seed=5, width=160, height=120,
                          fps=FPS, only=("smile",))  # fmt: skip
    procs = []
    for run, seed in zip(run_dirs(folder), HASH_SEEDS, strict=True):
        run.mkdir(parents=True)
        with (run / "train.log").open("wb") as log:
            env = {**os.environ, "PYTHONHASHSEED": seed}
            procs.append(subprocess.Popen(_train_args(dataset, run), env=env, stdout=log, stderr=subprocess.STDOUT))
    for run, proc in zip(run_dirs(folder), procs, strict=True):
        if proc.wait(900) != 0:
            tail = (run / "train.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"training in {run} failed (exit {proc.returncode}):\n{tail}")


if __name__ == "__main__":  # the build: python -m tests.reproducible_runs FOLDER
    out = Path(sys.argv[1])
    build(out)
    finished(out)
