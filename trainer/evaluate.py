"""Evaluate a run's best checkpoints on the held-out test subjects: metrics.json and PNG plots in the run dir."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from trainer import plots
from trainer.config import RunConfig, load_resolved
from trainer.data.cache import CachedClip
from trainer.metrics import ExpressionMetrics, affine_calibration, expression_metrics, mean_spearman
from trainer.models.trampformer import TrampFormer
from trainer.runs import BEST, load_checkpoint, load_data, pick_device
from trainer.train import predict

log = logging.getLogger(__name__)


def _calibrated(
    model: TrampFormer,
    val: list[CachedClip],
    test_pred: npt.NDArray[np.float32],
    test_label: npt.NDArray[np.float64],
    cfg: RunConfig,
    device: torch.device,
) -> dict[str, Any]:
    """Test MAE / RMSE after the affine map fitted on the validation clips' predictions (none without val clips)."""
    if not val:
        return {}
    val_pred = predict(model, val, cfg, device)
    scale, offset = affine_calibration(val_pred, np.array([c.record.label for c in val]))
    err = scale * test_pred.astype(np.float64) + offset - test_label
    return {
        "calibration": [scale, offset],
        "mae_calibrated": float(np.abs(err).mean()),
        "rmse_calibrated": float(np.sqrt((err**2).mean())),
    }


def evaluate(run_dir: Path, cfg: RunConfig | None = None, bootstrap: int = 1000) -> dict[str, Any]:
    """Score every expression's best model on its test clips; write metrics.json and plots; return the metrics."""
    cfg = cfg or load_resolved(run_dir / "config.toml")
    device = pick_device(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    results: list[ExpressionMetrics] = []
    extra: dict[str, dict[str, Any]] = {}
    for expr, data in load_data(cfg).items():
        model, ckpt = load_checkpoint(run_dir / expr / BEST)
        pred = predict(model.to(device), data.test, cfg, device)
        label = np.array([c.record.label for c in data.test])
        res = expression_metrics(expr, pred, label, [c.record.subject for c in data.test], bootstrap, cfg.train.seed)
        results.append(res)
        extra[expr] = _calibrated(model, data.val, pred, label, cfg, device)
        plots.predicted_vs_true(expr, pred.tolist(), label.tolist(), run_dir / f"pred_vs_true_{expr}.png")
        hist_path = run_dir / expr / "history.json"
        if hist_path.is_file():
            plots.loss_curves(json.loads(hist_path.read_text()), run_dir / f"loss_{expr}.png", expr)
        log.info("%s: test Spearman %.3f (best epoch %d on validation)", expr, res.spearman, ckpt["epoch"])
    plots.spearman_bars(results, run_dir / "spearman.png")
    out = {
        "mean_spearman": mean_spearman(results),
        "expressions": {r.expression: {**dataclasses.asdict(r), **extra[r.expression]} for r in results},
    }
    (run_dir / "metrics.json").write_text(json.dumps(out, indent=1))
    return out
