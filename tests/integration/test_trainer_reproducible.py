"""Training is a function of config and data: two processes with different PYTHONHASHSEED (so any set or dict of
strings iterates differently), each building its own feature cache, give bit-identical weights and metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from phantom.dataset import write_pfed5

pytestmark = pytest.mark.integration
FPS = 5.0


def _train(dataset: Path, run: Path, hash_seed: str) -> None:
    args = [sys.executable, "-c", "from trainer.cli import cli; cli()", "train", "-c", "micro", "--run-dir", str(run)]
    for item in (f'data.root="{dataset}"', 'data.expressions=["smile"]', f"data.fps={FPS}", "optim.epochs=3",
                 f'data.cache_dir="{run / "cache"}"'):  # fmt: skip
        args += ["--set", item]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_with_different_hash_seeds_train_identical_weights(tmp_path: Path) -> None:
    dataset = write_pfed5(tmp_path / "data", n_subjects=12, clips_per_task=2, seed=5, width=160, height=120,
                          fps=FPS, only=("smile",))  # fmt: skip
    runs = [tmp_path / "run1", tmp_path / "run2"]
    for run, seed in zip(runs, ("1", "2"), strict=True):
        _train(dataset, run, seed)
    states = [torch.load(r / "smile" / "last.pt", weights_only=False)["model"] for r in runs]
    assert states[0].keys() == states[1].keys()
    differing = [k for k in states[0] if not torch.equal(states[0][k], states[1][k])]
    assert not differing, f"weights differ between the two processes: {differing[:5]}"
    histories = [json.loads((r / "smile" / "history.json").read_text()) for r in runs]
    assert histories[0] == histories[1] and len(histories[0]) == 3
    summaries = [json.loads((r / "train_summary.json").read_text()) for r in runs]
    assert summaries[0] == summaries[1]
    assert summaries[0]["smile"]["stopped_by_time_budget"] is False
    # the loss moved: the run trained, so equal weights are not two untouched initialisations
    assert histories[0][0]["train_loss"] != histories[0][-1]["train_loss"]
