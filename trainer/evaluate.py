"""Evaluate a run's best checkpoints on the held-out test subjects: metrics.json and PNG plots in the run dir.

Per expression, metrics.json holds the raw test metrics (the regressor's own output) and the calibrated ones
(``mae_calibrated``, ``rmse_calibrated``, ``spearman_calibrated``): the test predictions passed through the
checkpoint's calibration, which was fitted on validation clips when training finished. A checkpoint saved before
calibrations existed gets one fitted here, on its validation clips, and saved back into ``best.pt``. Nothing is
ever fitted on test clips.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from common.manifest import Calibration
from trainer import plots
from trainer.calibration import CHECKPOINT_KEY, checkpoint_calibration
from trainer.config import RunConfig, load_resolved
from trainer.data.cache import CachedClip
from trainer.metrics import ExpressionMetrics, expression_metrics, mean_spearman, spearman
from trainer.models.trampformer import TrampFormer
from trainer.runs import BEST, load_checkpoint, load_data, pick_device
from trainer.train import calibrate_checkpoint, predict

log = logging.getLogger(__name__)


def _checkpoint_calibration(
    model: TrampFormer, ckpt: dict[str, Any], path: Path, val: list[CachedClip], cfg: RunConfig, device: torch.device
) -> dict[str, Any]:
    """The checkpoint's calibration dict; fitted on validation and saved into ``path`` when the checkpoint has none."""
    if checkpoint_calibration(ckpt) is None:
        fit = calibrate_checkpoint(model, ckpt, path, val, cfg, device)
        log.info("%s: checkpoint had no calibration; fitted one on %d validation clips and saved it into %s",
                 path.parent.name, len(val), path)  # fmt: skip
        return fit.to_checkpoint()
    stored: dict[str, Any] = ckpt[CHECKPOINT_KEY]
    return stored


def _calibrated_metrics(
    calibration: dict[str, Any], calibrated: npt.NDArray[np.float64], label: npt.NDArray[np.float64]
) -> dict[str, Any]:
    """Test metrics of the calibrated, clamped predictions (the map itself came from validation clips)."""
    err = calibrated - label
    return {
        "calibration": calibration,
        "mae_calibrated": float(np.abs(err).mean()),
        "rmse_calibrated": float(np.sqrt((err**2).mean())),
        "spearman_calibrated": spearman(calibrated, label),
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
        calibration = _checkpoint_calibration(model, ckpt, run_dir / expr / BEST, data.val, cfg, device)
        pred = predict(model.to(device), data.test, cfg, device)
        label = np.array([c.record.label for c in data.test], dtype=np.float64)
        res = expression_metrics(expr, pred, label, [c.record.subject for c in data.test], bootstrap, cfg.train.seed)
        results.append(res)
        calibrated = Calibration.from_dict(calibration).apply(pred)
        extra[expr] = _calibrated_metrics(calibration, calibrated, label)
        plots.predicted_vs_true(
            expr, calibrated.tolist(), label.tolist(), run_dir / f"pred_vs_true_{expr}.png", raw=pred.tolist()
        )
        hist_path = run_dir / expr / "history.json"
        if hist_path.is_file():
            plots.loss_curves(json.loads(hist_path.read_text()), run_dir / f"loss_{expr}.png", expr)
        log.info("%s: test Spearman %.3f, MAE raw %.3f / calibrated %.3f (best epoch %d on validation)", expr,
                 res.spearman, res.mae, extra[expr]["mae_calibrated"], ckpt["epoch"])  # fmt: skip
    plots.spearman_bars(results, run_dir / "spearman.png")
    out = {
        "mean_spearman": mean_spearman(results),
        "expressions": {r.expression: {**dataclasses.asdict(r), **extra[r.expression]} for r in results},
    }
    (run_dir / "metrics.json").write_text(json.dumps(out, indent=1))
    return out
