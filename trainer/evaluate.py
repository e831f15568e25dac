"""Evaluate a run's best checkpoints on the held-out test subjects: metrics.json and PNG plots in the run dir.

Per expression, metrics.json holds the raw test metrics (the regressor's own output) and the calibrated ones
(``mae_calibrated``, ``rmse_calibrated``, ``spearman_calibrated``): the test predictions passed through the
checkpoint's calibration, which was fitted on validation clips when training finished. A checkpoint saved before
calibrations existed gets one fitted here, on its validation clips, and saved back into ``best.pt``. Nothing is
ever fitted on test clips.

Beside the model, on the same test clips, every expression gets the trivial baselines of :mod:`trainer.baselines`
(fitted on the run's training and validation subjects), the Spearman ceiling of the test labels, and
``mae_vs_best_baseline``: the calibrated MAE over the best baseline's (below 1 = better than it). ``extra`` names
other datasets of the same layout (acceptance sets: held-out identities, timing- or amplitude-decoupled): every clip
of such a set is a test clip; its figures go to ``metrics_<name>.json``.
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
from trainer.baselines import ClipView, best_baseline, score_baselines, spearman_ceiling
from trainer.calibration import CHECKPOINT_KEY, checkpoint_calibration
from trainer.config import RunConfig, load_resolved
from trainer.data.cache import CachedClip
from trainer.metrics import ExpressionMetrics, expression_metrics, mean_spearman, spearman
from trainer.models.trampformer import TrampFormer
from trainer.runs import BEST, ExpressionData, load_checkpoint, load_data, load_eval_set, pick_device
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


def _views(clips: list[CachedClip]) -> list[ClipView]:
    return [ClipView(c.load()[0], c.record.n_frames, c.record.label) for c in clips]


def _beside_baselines(
    expr: str, train: list[ClipView], test: list[CachedClip], calibrated: npt.NDArray[np.float64], cfg: RunConfig
) -> dict[str, Any]:
    """The baselines' figures on the model's test clips, the label ceiling and the model's MAE over the best's."""
    label_range = (cfg.data.label_min, cfg.data.label_max)
    scores = score_baselines(train, _views(test), expr, cfg.data.fps, label_range)
    best = best_baseline(scores)
    label = np.array([c.record.label for c in test], dtype=np.float64)
    mae = float(np.abs(calibrated - label).mean())
    return {
        "baselines": {k: {"spearman": v.spearman, "mae": v.mae} for k, v in scores.items()},
        "best_baseline": best.name,
        "ceiling_spearman": spearman_ceiling(label),
        "mae_vs_best_baseline": mae / best.mae if best.mae > 0 else float("inf"),
    }


def _score_set(
    run_dir: Path,
    data: dict[str, ExpressionData],
    test_sets: dict[str, list[CachedClip]],
    cfg: RunConfig,
    device: torch.device,
    bootstrap: int,
    plot_prefix: str,
) -> dict[str, Any]:
    results: list[ExpressionMetrics] = []
    extra: dict[str, dict[str, Any]] = {}
    for expr, test in test_sets.items():
        model, ckpt = load_checkpoint(run_dir / expr / BEST)
        calibration = _checkpoint_calibration(model, ckpt, run_dir / expr / BEST, data[expr].val, cfg, device)
        pred = predict(model.to(device), test, cfg, device)
        label = np.array([c.record.label for c in test], dtype=np.float64)
        res = expression_metrics(expr, pred, label, [c.record.subject for c in test], bootstrap, cfg.train.seed)
        results.append(res)
        calibrated = Calibration.from_dict(calibration).apply(pred)
        extra[expr] = _calibrated_metrics(calibration, calibrated, label)
        extra[expr] |= _beside_baselines(expr, _views(data[expr].train + data[expr].val), test, calibrated, cfg)
        png = run_dir / f"{plot_prefix}pred_vs_true_{expr}.png"
        plots.predicted_vs_true(expr, calibrated.tolist(), label.tolist(), png, raw=pred.tolist())
        e = extra[expr]
        log.info(
            "%s%s: test Spearman %.3f, MAE raw %.3f / calibrated %.3f (best epoch %d on validation); MAE %.2f x the "
            "best baseline's (%s)",
            *(plot_prefix, expr, res.spearman, res.mae, e["mae_calibrated"], ckpt["epoch"]),
            *(e["mae_vs_best_baseline"], e["best_baseline"]),
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
    cfg = cfg or load_resolved(run_dir / "config.toml")
    device = pick_device(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    data = load_data(cfg)
    tests = {e: d.test for e, d in data.items() if d.test}
    out = {"test": _score_set(run_dir, data, tests, cfg, device, bootstrap, "")}
    (run_dir / "metrics.json").write_text(json.dumps(out["test"], indent=1))
    for expr in data:
        hist_path = run_dir / expr / "history.json"
        if hist_path.is_file():
            plots.loss_curves(json.loads(hist_path.read_text()), run_dir / f"loss_{expr}.png", expr)
    for name, root in (extra or {}).items():
        sets = {e: clips for e, clips in load_eval_set(cfg, root).items() if e in data}
        out[name] = _score_set(run_dir, data, sets, cfg, device, bootstrap, f"{name}_")
        (run_dir / f"metrics_{name}.json").write_text(json.dumps(out[name], indent=1))
    return out
