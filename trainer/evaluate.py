"""Evaluate a run's best checkpoints on the held-out test subjects: metrics.json and PNG plots in the run dir.

Per expression, metrics.json holds the raw test metrics (the regressor's own output) and the calibrated ones
(``mae_calibrated``, ``rmse_calibrated``, ``spearman_calibrated``): the test predictions passed through the
checkpoint's calibration, which was fitted on validation clips when training finished. Nothing is ever fitted on
test clips; a checkpoint without a calibration (its run did not finish) is refused with what to do.

Beside each model, ``baselines`` holds the test Spearman of the trivial one-number baselines on the same test clips
(:mod:`trainer.baselines`, signs fitted on the training clips) and ``margin_over_baselines`` the model's raw test
Spearman minus the best of them: a model result counts only where that margin is positive.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ConfigError
from trainer import checkpoint, plots
from trainer.baselines import baselines
from trainer.builders import heatmap_spec
from trainer.checkpoint import BEST
from trainer.config import RunConfig, load_resolved
from trainer.data.dataset import load_dataset
from trainer.metrics import ExpressionMetrics, expression_metrics, mean_spearman, spearman
from trainer.predict import labels, predict
from trainer.runtime import pick_device, set_threads

log = logging.getLogger(__name__)


def evaluate(run_dir: Path, cfg: RunConfig | None = None, bootstrap: int = 1000) -> dict[str, Any]:
    """Score every expression's best model on its test clips; write metrics.json and plots; return the metrics."""
    if cfg is None:
        if not (run_dir / "config.toml").is_file():
            raise ConfigError(f"{run_dir} is not a training run (no config.toml): pass the --run-dir of `feqa train`")
        cfg = load_resolved(run_dir / "config.toml")
    device = pick_device(cfg.train.device)
    set_threads(cfg.train.threads)
    ckpts = {p.parent.name: checkpoint.read(p) for p in sorted(run_dir.glob(f"*/{BEST}"))}
    first = next(iter(ckpts.values()), None)
    spec = None if first is None else heatmap_spec(first.model().cfg)
    results: list[ExpressionMetrics] = []
    extra: dict[str, dict[str, Any]] = {}
    for expr, data in load_dataset(cfg, spec).expressions.items():
        if expr not in ckpts:
            log.warning("%s: no %s in %s (not trained?), skipped", expr, BEST, run_dir)
            continue
        ckpt = ckpts[expr]
        calibration = ckpt.require_calibration(run_dir / expr / BEST)
        pred = predict(ckpt.model().to(device), data.test, device, cfg.optim.batch_size, cfg.train.eval_clips)
        label = labels(data.test)
        res = expression_metrics(expr, pred, label, [c.record.subject for c in data.test], bootstrap, cfg.train.seed)
        results.append(res)
        calibrated = calibration.apply(pred)
        err = calibrated - label
        base = baselines(data.train, data.test)
        extra[expr] = {
            "calibration": calibration.to_dict(),
            "mae_calibrated": float(np.abs(err).mean()),
            "rmse_calibrated": float(np.sqrt((err**2).mean())),
            "spearman_calibrated": spearman(calibrated, label),
            "family": ckpt.family,
            "baselines": base,
            "margin_over_baselines": res.spearman - max(base.values()),
            "best_epoch": ckpt.epoch,
        }
        plots.predicted_vs_true(
            expr, calibrated.tolist(), label.tolist(), run_dir / f"pred_vs_true_{expr}.png", raw=pred.tolist()
        )
        hist_path = run_dir / expr / "history.json"
        if hist_path.is_file():
            plots.loss_curves(json.loads(hist_path.read_text()), run_dir / f"loss_{expr}.png", expr)
        log.info("%s: test Spearman %.3f, MAE raw %.3f / calibrated %.3f (best epoch %d on validation)", expr,
                 res.spearman, res.mae, extra[expr]["mae_calibrated"], ckpt.epoch)  # fmt: skip
    plots.spearman_bars(results, run_dir / "spearman.png")
    out = {
        "mean_spearman": mean_spearman(results),
        "expressions": {r.expression: {**dataclasses.asdict(r), **extra[r.expression]} for r in results},
    }
    (run_dir / "metrics.json").write_text(json.dumps(out, indent=1))
    return out
