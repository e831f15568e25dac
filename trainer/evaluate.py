"""Evaluate a run's best checkpoints on the held-out test subjects: metrics.json and PNG plots in the run dir."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from trainer import plots
from trainer.config import RunConfig, load_resolved
from trainer.metrics import ExpressionMetrics, expression_metrics, mean_spearman
from trainer.runs import BEST, load_checkpoint, load_data, pick_device
from trainer.train import predict

log = logging.getLogger(__name__)


def evaluate(run_dir: Path, cfg: RunConfig | None = None, bootstrap: int = 1000) -> dict[str, Any]:
    """Score every expression's best model on its test clips; write metrics.json and plots; return the metrics."""
    cfg = cfg or load_resolved(run_dir / "config.toml")
    device = pick_device(cfg.train.device)
    results: list[ExpressionMetrics] = []
    for expr, data in load_data(cfg).items():
        model, ckpt = load_checkpoint(run_dir / expr / BEST)
        pred = predict(model.to(device), data.test, cfg, device)
        label = np.array([c.record.label for c in data.test])
        res = expression_metrics(expr, pred, label, [c.record.subject for c in data.test], bootstrap, cfg.train.seed)
        results.append(res)
        plots.predicted_vs_true(expr, pred.tolist(), label.tolist(), run_dir / f"pred_vs_true_{expr}.png")
        hist_path = run_dir / expr / "history.json"
        if hist_path.is_file():
            plots.loss_curves(json.loads(hist_path.read_text()), run_dir / f"loss_{expr}.png", expr)
        log.info("%s: test Spearman %.3f (best epoch %d on validation)", expr, res.spearman, ckpt["epoch"])
    plots.spearman_bars(results, run_dir / "spearman.png")
    out = {
        "mean_spearman": mean_spearman(results),
        "expressions": {r.expression: dataclasses.asdict(r) for r in results},
    }
    (run_dir / "metrics.json").write_text(json.dumps(out, indent=1))
    return out
