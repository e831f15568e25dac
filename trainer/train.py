"""The training loop: one model per expression (any family), best epoch chosen on validation subjects (never test).

Each expression's ``best.pt`` is a :class:`trainer.checkpoint.Checkpoint` written whenever validation Spearman
improves; when the expression finishes, the score calibration is fitted on the validation clips with the best
weights (:mod:`trainer.predict`) and written into it. ``last.pt`` keeps what ``--resume`` needs.

A run whose validation predictions stay the same for every clip (``train.dead_epochs`` epochs in a row) has a dead
head: once no hidden unit of the head is active, no weight gets a gradient again, so the run is stopped with an error
in the log and, ``train.dead_restarts`` times at most, trained again from scratch with another seed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.errors import ConfigError
from trainer import checkpoint
from trainer.builders import build_model, heatmap_spec, model_config
from trainer.checkpoint import BEST, LAST, Checkpoint
from trainer.config import RunConfig, dump
from trainer.crossfit import cross_fit_calibration
from trainer.data.dataset import ExpressionData, load_dataset
from trainer.loop import add_motion_head, make_optimizer, make_scheduler, train_epochs
from trainer.metrics import spearman
from trainer.predict import calibrate, labels, predict
from trainer.runtime import pick_device, seed_everything, set_threads
from trainer.safeload import read_own

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    expression: str
    best_epoch: int
    best_val_spearman: float
    epochs_run: int
    history: list[dict[str, float]]
    stopped_by_time_budget: bool = False  # train.max_minutes ended it: the epoch count depended on the machine
    seed: int = 0  # the seed of the run kept (train.seed, or another one after a restart)
    restarts: int = 0  # runs stopped for a constant output before this one
    dead_output: bool = False  # this run too was stopped for a constant output (no restart left)


DEAD_TOLERANCE = 1e-6  # predictions spread over less than this fraction of the label range count as one value
RESTART_SEED_STEP = 1000


def constant_output(pred: np.ndarray, label_range: tuple[float, float]) -> bool:
    """True when every prediction is the same value (to :data:`DEAD_TOLERANCE` of the label range)."""
    span = max(label_range[1] - label_range[0], 1.0)
    return pred.size > 1 and bool(np.ptp(pred) <= DEAD_TOLERANCE * span)


def _record(cfg: RunConfig, model: nn.Module, data: ExpressionData, epoch: int, rho: float) -> Checkpoint:
    return Checkpoint(
        family=cfg.model.family,
        model_config=getattr(model, "cfg").to_dict(),  # noqa: B009 - every family keeps its config there
        state=model.state_dict(),
        protocol=cfg.data.layout,
        task=data.expression,
        label_min=cfg.data.label_min,
        label_max=cfg.data.label_max,
        fps=cfg.data.fps,
        landmarker=data.landmarker(),
        epoch=epoch,
        val_spearman=rho,
        data_hash=data.data_hash(),
    )


def _save_last(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


CALIBRATIONS = ("validation", "cross_fit")


def _check_calibration(cfg: RunConfig, data: ExpressionData) -> None:
    """Refuse a calibration choice that could only fail after the training (a typo, or more folds than subjects)."""
    if cfg.train.calibration not in CALIBRATIONS:
        raise ConfigError(f"train.calibration must be one of {CALIBRATIONS}, got {cfg.train.calibration!r}")
    if cfg.train.calibration == "cross_fit":
        subjects = len({c.record.subject for c in data.train + data.val})
        if not 2 <= cfg.train.calibration_folds <= subjects:
            raise ConfigError(f"{data.expression}: train.calibration_folds must be between 2 and {subjects} (its "
                              f"training and validation subjects), got {cfg.train.calibration_folds}")  # fmt: skip


def train_expression(cfg: RunConfig, data: ExpressionData, out_dir: Path, resume: bool) -> TrainResult:
    """Train one expression's model into ``out_dir`` (best.pt, last.pt, history.json), again from scratch with
    another seed when a run is stopped for a constant output (``train.dead_restarts`` times at most)."""
    _check_calibration(cfg, data)
    result = _train_run(cfg, data, out_dir, resume)
    for restart in range(1, cfg.train.dead_restarts + 1):
        if not result.dead_output:
            break
        seed = cfg.train.seed + RESTART_SEED_STEP * restart
        log.warning("%s: restart %d of %d from scratch with seed %d", data.expression, restart,
                    cfg.train.dead_restarts, seed)  # fmt: skip
        for name in (BEST, LAST):
            (out_dir / name).unlink(missing_ok=True)
        again = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))
        result = dataclasses.replace(_train_run(again, data, out_dir, resume=False), restarts=restart)
    return result


def _train_run(cfg: RunConfig, data: ExpressionData, out_dir: Path, resume: bool) -> TrainResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.train.seed)
    device = pick_device(cfg.train.device)
    model = build_model(cfg, data.expression).to(device)
    optim = make_optimizer(cfg, model)
    motion = add_motion_head(cfg, model, optim)  # training only: never saved into best.pt
    sched = make_scheduler(cfg, optim)
    history: list[dict[str, float]] = []
    best_rho, best_epoch, start = -2.0, -1, 0
    if resume and (out_dir / LAST).is_file():
        state = read_own(out_dir / LAST)
        model.load_state_dict(state["model"], strict=True)
        if (motion is not None) != ("motion_head" in state):
            raise ConfigError(f"{data.expression}: {out_dir / LAST} was saved with train.motion_aux "
                              f"{'off' if motion is not None else 'on'}; resume it with the same setting")  # fmt: skip
        if motion is not None:
            motion.load_state_dict(state["motion_head"], strict=True)
        optim.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history, best_rho, best_epoch, start = state["history"], state["best_rho"], state["best_epoch"], state["epoch"]
        torch.set_rng_state(state["torch_rng"])
        log.info("%s: resumed at epoch %d", data.expression, start)
    val_label = labels(data.val)
    t0, stopped, flat, dead = time.monotonic(), False, 0, False
    label_range = (cfg.data.label_min, cfg.data.label_max)

    def after_epoch(epoch: int, train_loss: float) -> bool:
        nonlocal best_rho, best_epoch, stopped, flat, dead
        val_pred = predict(model, data.val, device, cfg.optim.batch_size)
        rho = spearman(val_pred, val_label)
        flat = flat + 1 if constant_output(val_pred, label_range) else 0
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_spearman": rho})
        log.info("%s epoch %d: loss %.4f, val Spearman %.3f", data.expression, epoch + 1, train_loss, rho)
        if rho >= best_rho:  # ties go to the later, longer-trained epoch
            best_rho, best_epoch = rho, epoch + 1
            checkpoint.save(out_dir / BEST, _record(cfg, model, data, epoch + 1, rho))
        _save_last(
            out_dir / LAST,
            {
                "model": model.state_dict(),
                "optimizer": optim.state_dict(),
                "scheduler": sched.state_dict(),
                "history": history,
                "best_rho": best_rho,
                "best_epoch": best_epoch,
                "epoch": epoch + 1,
                "torch_rng": torch.get_rng_state(),
                **({} if motion is None else {"motion_head": motion.state_dict()}),
            },
        )
        if cfg.train.dead_epochs and flat >= cfg.train.dead_epochs:
            log.error("%s: dead head, stopping the run (seed %d) after epoch %d: validation predictions have been "
                      "%.4f for all %d clips for %d epochs in a row, and a constant output gets no gradient",
                      data.expression, cfg.train.seed, epoch + 1, float(val_pred[0]), val_pred.size,
                      flat)  # fmt: skip
            dead = True
            return True
        over = cfg.train.max_minutes and time.monotonic() - t0 > 60 * cfg.train.max_minutes
        if over and epoch + 1 < cfg.optim.epochs:
            log.warning("%s: time budget of %.1f min reached after epoch %d of %d: this run is not reproducible "
                        "(the epoch count depended on the machine's load; set train.max_minutes = 0 for a "
                        "reproducible run)", data.expression, cfg.train.max_minutes, epoch + 1,
                        cfg.optim.epochs)  # fmt: skip
            stopped = True
            return True
        return False

    train_epochs(cfg, model, optim, sched, data.train, device, start, after_epoch, data.expression, motion)
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    if (out_dir / BEST).is_file():
        _calibrate_best(cfg, out_dir / BEST, data, device)
    return TrainResult(data.expression, best_epoch, best_rho, len(history), history, stopped, cfg.train.seed,
                       dead_output=dead)  # fmt: skip


def _calibrate_best(cfg: RunConfig, path: Path, data: ExpressionData, device: torch.device) -> None:
    best = checkpoint.read(path)
    if cfg.train.calibration == "cross_fit":  # the choice was checked before training (_check_calibration)
        fit = cross_fit_calibration(cfg, data, best.epoch, device)
    else:
        fit = calibrate(best.model(), data.val, (best.label_min, best.label_max), device, data.expression,
                        cfg.optim.batch_size, cfg.train.eval_clips)  # fmt: skip
    checkpoint.save(path, best.with_calibration(fit.calibration, fit.report()))
    c = fit.calibration
    figures = (c.fitted_on, c.n, c.scale, c.offset, fit.val_mae_raw, fit.val_mae_calibrated)
    log.info("%s: calibration (%s, %d clips) scale %.4f offset %.4f; MAE on those clips raw %.3f -> calibrated %.3f",
             data.expression, *figures)  # fmt: skip


def train(cfg: RunConfig, run_dir: Path, resume: bool = False) -> list[TrainResult]:
    """Train every expression of the config into ``run_dir/<expression>/``; saves the resolved config first and
    ``data_report.json`` (clips per expression and part, clips left out with why) once the features are ready."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(dump(cfg))
    set_threads(cfg.train.threads)
    data = load_dataset(cfg, heatmap_spec(model_config(cfg, "")))
    (run_dir / "data_report.json").write_text(json.dumps(data.report(), indent=1))
    results = [train_expression(cfg, d, run_dir / expr, resume) for expr, d in data.expressions.items()]
    summary = {
        r.expression: {
            "best_epoch": r.best_epoch,
            "val_spearman": r.best_val_spearman,
            "epochs_run": r.epochs_run,
            "stopped_by_time_budget": r.stopped_by_time_budget,
            "seed": r.seed,
            "restarts": r.restarts,
            "dead_output": r.dead_output,
        }
        for r in results
    }
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=1))
    return results
