"""Test metrics and plots for a finished run.

Per expression, metrics.json holds the raw test metrics (the regressor's own output) and the calibrated ones
(``mae_calibrated``, ``rmse_calibrated``, ``spearman_calibrated``): the test predictions passed through the
checkpoint's calibration, which was fitted on validation clips when training finished. Nothing is ever fitted on
test clips; a checkpoint without a calibration (its run did not finish) is refused with what to do.

Beside the model, on the same test clips, every expression gets the trivial baselines of :mod:`trainer.baselines`
(fitted on the run's training and validation subjects), the Spearman ceiling of the test labels,
``mae_vs_best_baseline`` (the calibrated MAE over the best baseline's; below 1 = better than it) and
``margin_over_baselines`` (the model's raw test Spearman minus the best ranking baseline's): a model result counts
only where that margin is positive. ``extra`` names other datasets of the same layout (acceptance sets: held-out
identities, timing- or amplitude-decoupled): every clip of such a set is a test clip; its figures go to
``metrics_<name>.json``. On a phantom set each expression also gets ``bound``, every oracle reader of the hidden
truth (:mod:`trainer.bound`, fitted on the same training clips as the baselines), and ``against_latent``, the slope,
offset and Pearson r of the calibrated predictions against the clips' latent severity (slope below 1: compressed
scores).
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

from common.errors import ConfigError
from common.heatmaps import HeatmapSpec
from trainer import checkpoint, plots
from trainer.baselines import best_baseline, clip_baselines, margin_over_baselines, spearman_ceiling
from trainer.bound import against_latent, bound_of, phantom_clip_specs
from trainer.builders import heatmap_spec
from trainer.checkpoint import BEST, Checkpoint
from trainer.config import RunConfig, load_resolved
from trainer.data.cache import CachedClip
from trainer.data.dataset import ExpressionData, load_dataset, load_eval_set
from trainer.metrics import ExpressionMetrics, expression_metrics, mean_spearman, spearman
from trainer.predict import labels, predict
from trainer.runtime import pick_device, set_threads

log = logging.getLogger(__name__)


def _calibrated_metrics(ckpt: Checkpoint, path: Path, pred: npt.NDArray[np.floating], label: npt.NDArray[np.float64]
                        ) -> dict[str, Any]:  # fmt: skip
    """Test metrics of the calibrated, clamped predictions (the map itself came from validation clips)."""
    calibration = ckpt.require_calibration(path)
    calibrated = calibration.apply(pred)
    err = calibrated - label
    return {
        "calibration": calibration.to_dict(),
        "mae_calibrated": float(np.abs(err).mean()),
        "rmse_calibrated": float(np.sqrt((err**2).mean())),
        "spearman_calibrated": spearman(calibrated, label),
    }


def beside_baselines(
    expr: str,
    fit_on: list[CachedClip],
    test: list[CachedClip],
    res: ExpressionMetrics,
    mae: float,
    cfg: RunConfig,
    test_root: Path | None = None,
) -> dict[str, Any]:
    """The baselines' figures on the model's test clips, the label ceiling, the model's MAE over the best baseline's
    and its Spearman margin over the best ranking baseline's; with the phantom oracle readers' figures (``bound``,
    empty on other data) when ``test_root`` names the test clips' dataset."""
    label_range = (cfg.data.label_min, cfg.data.label_max)
    scores = clip_baselines(fit_on, test, expr, cfg.data.fps, label_range)
    best = best_baseline(scores)
    bound: dict[str, dict[str, float]] = {}
    if test_root is not None:
        records = [c.record for c in fit_on], [c.record for c in test]
        bound = bound_of(records[0], Path(cfg.data.root), records[1], test_root, cfg.data.layout, label_range)
    return {
        "bound": bound,
        "baselines": {k: {"spearman": v.spearman, "mae": v.mae} for k, v in scores.items()},
        "best_baseline": best.name,
        "ceiling_spearman": spearman_ceiling(labels(test)),
        "mae_vs_best_baseline": mae / best.mae if best.mae > 0 else float("inf"),
        "margin_over_baselines": margin_over_baselines(res.spearman, scores),
    }


def _score_set(
    run_dir: Path,
    ckpts: dict[str, Checkpoint],
    data: dict[str, ExpressionData],
    test_sets: dict[str, list[CachedClip]],
    cfg: RunConfig,
    device: torch.device,
    bootstrap: int,
    plot_prefix: str,
    root: Path,
) -> dict[str, Any]:
    results: list[ExpressionMetrics] = []
    specs = phantom_clip_specs(root, cfg.data.layout)
    extra: dict[str, dict[str, Any]] = {}
    for expr, test in test_sets.items():
        ckpt = ckpts[expr]
        path = run_dir / expr / BEST
        ckpt.require_calibration(path)
        pred = predict(ckpt.model().to(device), test, device, cfg.optim.batch_size, cfg.train.eval_clips)
        label = labels(test)
        res = expression_metrics(expr, pred, label, [c.record.subject for c in test], bootstrap, cfg.train.seed)
        results.append(res)
        e = _calibrated_metrics(ckpt, path, pred, label)
        e |= {"family": ckpt.family, "best_epoch": ckpt.epoch}
        e |= beside_baselines(expr, data[expr].train + data[expr].val, test, res, e["mae_calibrated"], cfg, root)
        calibrated = ckpt.require_calibration(path).apply(pred)
        if all(c.record.clip_id in specs for c in test):
            e["against_latent"] = against_latent(calibrated, [specs[c.record.clip_id][0].severity for c in test])
        extra[expr] = e
        png = run_dir / f"{plot_prefix}pred_vs_true_{expr}.png"
        plots.predicted_vs_true(expr, calibrated.tolist(), label.tolist(), png, raw=pred.tolist())
        log.info(
            "%s%s: test Spearman %.3f, MAE raw %.3f / calibrated %.3f (best epoch %d on validation); MAE %.2f x the "
            "best baseline's (%s), Spearman margin %+.3f",
            *(plot_prefix, expr, res.spearman, res.mae, e["mae_calibrated"], ckpt.epoch),
            *(e["mae_vs_best_baseline"], e["best_baseline"], e["margin_over_baselines"]),
        )
    plots.spearman_bars(results, run_dir / f"{plot_prefix}spearman.png")
    return {
        "mean_spearman": mean_spearman(results),
        "expressions": {r.expression: {**dataclasses.asdict(r), **extra[r.expression]} for r in results},
    }


def evaluate(
    run_dir: Path, cfg: RunConfig | None = None, bootstrap: int = 1000, extra: dict[str, Path] | None = None
) -> dict[str, Any]:
    """Score every expression's best model on its test clips (and on every clip of each ``extra`` dataset); write
    metrics.json (metrics_<name>.json) and plots; return the metrics, keyed ``"test"`` and each extra name."""
    if cfg is None:
        if not (run_dir / "config.toml").is_file():
            raise ConfigError(f"{run_dir} is not a training run (no config.toml): pass the --run-dir of `feqa train`")
        cfg = load_resolved(run_dir / "config.toml")
    device = pick_device(cfg.train.device)
    set_threads(cfg.train.threads)
    ckpts = {p.parent.name: checkpoint.read(p) for p in sorted(run_dir.glob(f"*/{BEST}"))}
    first = next(iter(ckpts.values()), None)
    spec: HeatmapSpec | None = None if first is None else heatmap_spec(first.model().cfg)
    data = load_dataset(cfg, spec).expressions
    for expr in data:
        if expr not in ckpts:
            log.warning("%s: no %s in %s (not trained?), skipped", expr, BEST, run_dir)
    tests = {e: d.test for e, d in data.items() if d.test and e in ckpts}
    out = {"test": _score_set(run_dir, ckpts, data, tests, cfg, device, bootstrap, "", Path(cfg.data.root))}
    (run_dir / "metrics.json").write_text(json.dumps(out["test"], indent=1))
    for expr in data:
        hist_path = run_dir / expr / "history.json"
        if hist_path.is_file():
            plots.loss_curves(json.loads(hist_path.read_text()), run_dir / f"loss_{expr}.png", expr)
    for name, root in (extra or {}).items():
        sets = {e: clips for e, clips in load_eval_set(cfg, root, spec).items() if e in data and e in ckpts}
        out[name] = _score_set(run_dir, ckpts, data, sets, cfg, device, bootstrap, f"{name}_", root)
        (run_dir / f"metrics_{name}.json").write_text(json.dumps(out[name], indent=1))
    return out
