"""A run whose head is dead (the reference's ReLU head with every last hidden unit switched off, the state the
collapsed acceptance run ended in) is stopped by the trainer with an error line, and trained again with another seed
when a restart is allowed; a live run is left alone. Micro trajectory-only model on the fair phantom's smiles."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import trainer.train
from tests.integration.conftest import FAIR_FPS
from trainer import checkpoint
from trainer.builders import build_model
from trainer.cli import cli
from trainer.config import RunConfig

pytestmark = pytest.mark.integration


def _dead_at_seed_0(cfg: RunConfig, expression: str) -> nn.Module:
    """The real model; at seed 0 its head is the reference's ReLU head with its last hidden layer switched off."""
    model = build_model(cfg, expression)
    if cfg.train.seed == 0:
        head = model.head
        assert isinstance(head, nn.Sequential)
        head[1], head[3] = nn.ReLU(), nn.ReLU()
        with torch.no_grad():
            head[2].bias.fill_(-100.0)
    return model


def _train(root: Path, run: Path, restarts: int) -> dict[str, object]:
    args = ["train", "-c", "micro", "--run-dir", str(run)]
    for item in (f'data.root="{root}"', 'data.expressions=["smile"]', f"data.fps={FAIR_FPS}", "model.rgb=false",
                 "optim.epochs=4", "train.dead_epochs=2", f"train.dead_restarts={restarts}"):  # fmt: skip
        args += ["--set", item]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads((run / "train_summary.json").read_text())["smile"]
    return summary


def test_a_dead_head_is_stopped_and_restarted_with_another_seed(
    fair_pfed5_smile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(trainer.train, "build_model", _dead_at_seed_0)
    with caplog.at_level(logging.WARNING, logger="trainer.train"):
        stopped = _train(fair_pfed5_smile, tmp_path / "no-restart", restarts=0)
    assert stopped["dead_output"] is True and stopped["epochs_run"] == 2 and stopped["seed"] == 0
    assert any("dead head, stopping the run (seed 0) after epoch 2" in r.getMessage() for r in caplog.records)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trainer.train"):
        again = _train(fair_pfed5_smile, tmp_path / "restart", restarts=1)
    assert again["dead_output"] is False and again["restarts"] == 1 and again["seed"] == 1000
    assert again["epochs_run"] == 4 and float(again["val_spearman"]) != 0.0  # type: ignore[arg-type]
    assert any("restart 1 of 1 from scratch with seed 1000" in r.getMessage() for r in caplog.records)
    kept = checkpoint.read(tmp_path / "restart" / "smile" / "best.pt")
    assert kept.calibration is not None and kept.epoch >= 1


def test_a_live_run_is_not_stopped(fair_pfed5_smile: Path, tmp_path: Path) -> None:
    live = _train(fair_pfed5_smile, tmp_path / "live", restarts=1)
    assert live["dead_output"] is False and live["restarts"] == 0 and live["epochs_run"] == 4 and live["seed"] == 0
