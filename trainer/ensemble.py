"""A seed ensemble of finished runs: each clip scored by the mean of the runs' calibrated predictions.

The runs (typically one config trained with different ``train.seed``) must have trained on the same data root,
layout and frame rate, and hold out the same test clips per expression: a member that trained on another run's test
clips is refused. Each member's predictions go through its own validation-fitted calibration before averaging, so
members whose raw outputs sit on different scales (BMC leaves them stretched and shifted) average on the label
scale. Nothing is fitted on test clips. The baselines are those of :mod:`trainer.evaluate`, fitted on the first
run's training and validation subjects.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from common.errors import ConfigError
from common.manifest import Calibration
from trainer import checkpoint
from trainer.builders import heatmap_spec
from trainer.checkpoint import BEST, Checkpoint
from trainer.config import RunConfig, load_resolved
from trainer.data.cache import CachedClip
from trainer.data.dataset import ExpressionData, load_dataset, load_eval_set
from trainer.evaluate import beside_baselines
from trainer.metrics import expression_metrics
from trainer.predict import labels, predict
from trainer.runtime import pick_device

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Member:
    run_dir: Path
    cfg: RunConfig
    ckpts: dict[str, Checkpoint]
    calibrations: dict[str, Calibration]


def _member(run_dir: Path) -> _Member:
    if not (run_dir / "config.toml").is_file():
        raise ConfigError(f"{run_dir} is not a training run (no config.toml)")
    ckpts = {p.parent.name: checkpoint.read(p) for p in sorted(run_dir.glob(f"*/{BEST}"))}
    calibrations = {expr: ckpt.require_calibration(run_dir / expr / BEST) for expr, ckpt in ckpts.items()}
    return _Member(run_dir, load_resolved(run_dir / "config.toml"), ckpts, calibrations)


def _test_ids(data: dict[str, ExpressionData]) -> dict[str, list[str]]:
    return {e: sorted(c.record.clip_id for c in d.test) for e, d in data.items()}


def calibrated_mean(members: list[tuple[nn.Module, Calibration]], clips: list[CachedClip], device: torch.device,
                    batch_size: int = 8) -> npt.NDArray[np.float64]:  # fmt: skip
    """The mean over ``members`` (a model on ``device`` and its calibration) of each one's calibrated, clamped
    predictions on ``clips``."""
    preds = [cal.apply(predict(model, clips, device, batch_size)) for model, cal in members]
    out: npt.NDArray[np.float64] = np.mean(preds, axis=0)
    return out


def evaluate_ensemble(
    runs: list[Path], bootstrap: int = 1000, extra: dict[str, Path] | None = None
) -> dict[str, dict[str, Any]]:
    """Per set (``"test"`` and each ``extra`` name) and expression: the ensemble's Spearman and MAE (with subject
    bootstrap intervals) beside the baselines, in the shape of ``metrics.json`` (``spearman_calibrated`` and
    ``mae_calibrated`` are the ensemble's own figures; ``members`` counts the runs)."""
    if len(runs) < 2:
        raise ConfigError("an ensemble needs at least two runs")
    members = [_member(r) for r in runs]
    first = members[0]
    cfg = first.cfg
    spec = None
    if first.ckpts:
        spec = heatmap_spec(next(iter(first.ckpts.values())).model().cfg)
    data = load_dataset(cfg, spec).expressions
    tests = _test_ids(data)
    for m in members[1:]:
        same = (m.cfg.data.root, m.cfg.data.layout, m.cfg.data.fps) == (cfg.data.root, cfg.data.layout, cfg.data.fps)
        if not same:
            raise ConfigError(f"{m.run_dir} trained on other data (root, layout or fps) than {first.run_dir}")
        if _test_ids(load_dataset(m.cfg, spec).expressions) != tests:
            raise ConfigError(f"{m.run_dir} holds out other test clips than {first.run_dir}: an ensemble of them "
                              "would score clips some member trained on")  # fmt: skip
    exprs = [e for e in data if all(e in m.ckpts for m in members)]
    device = pick_device(cfg.train.device)
    sets = {"test": {e: data[e].test for e in exprs if data[e].test}}
    for name, root in (extra or {}).items():
        sets[name] = {e: clips for e, clips in load_eval_set(cfg, root, spec).items() if e in exprs}
    # each member's model built once per expression, for every set
    models = {e: [(m.ckpts[e].model().to(device), m.calibrations[e]) for m in members] for e in exprs}
    out: dict[str, dict[str, Any]] = {}
    for name, clips_by_expr in sets.items():
        scored: dict[str, Any] = {}
        for expr, clips in clips_by_expr.items():
            pred = calibrated_mean(models[expr], clips, device, cfg.optim.batch_size)
            label = labels(clips)
            res = expression_metrics(expr, pred, label, [c.record.subject for c in clips], bootstrap, cfg.train.seed)
            e: dict[str, Any] = {**dataclasses.asdict(res), "members": len(members)}
            e |= {"spearman_calibrated": res.spearman, "mae_calibrated": res.mae}
            e |= beside_baselines(expr, data[expr].train + data[expr].val, clips, res, res.mae, cfg)
            scored[expr] = e
            log.info("ensemble of %d on %s, %s: Spearman %.3f, MAE %.3f (%.2f x %s's)", len(members), name, expr,
                     res.spearman, res.mae, e["mae_vs_best_baseline"], e["best_baseline"])  # fmt: skip
        out[name] = {"expressions": scored}
    return out
