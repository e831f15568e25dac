"""The training loop: one TraMP-Former per expression, best epoch chosen on validation subjects (never on test).

When an expression finishes, its best checkpoint gets the score calibration fitted on the validation clips
(:mod:`trainer.calibration`), stored in ``best.pt`` under ``"calibration"``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from trainer.bmc import bmc_loss
from trainer.calibration import CHECKPOINT_KEY, CalibrationFit, fit_calibration
from trainer.config import RunConfig, dump
from trainer.data.cache import CachedClip
from trainer.data.samples import ClipSamples
from trainer.metrics import spearman
from trainer.models.trampformer import TrampFormer
from trainer.runs import (
    BEST,
    LAST,
    ExpressionData,
    build_model,
    load_checkpoint,
    load_dataset,
    pick_device,
    sample_spec,
    seed_everything,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    expression: str
    best_epoch: int
    best_val_spearman: float
    epochs_run: int
    history: list[dict[str, float]]


def make_optimizer(cfg: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.recipe == "sgd":
        return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.recipe == "adam":
        return torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    raise ValueError(f"optim.recipe must be 'adam' or 'sgd', got {o.recipe!r}")


@torch.no_grad()
def predict(model: TrampFormer, clips: list[CachedClip], cfg: RunConfig, device: torch.device) -> np.ndarray:
    """Scores for clips with the evaluation sampling rules, in order."""
    model.eval()
    ds = ClipSamples(clips, sample_spec(cfg, model.cfg, train=False))
    out: list[np.ndarray] = []
    for frames, traj, index_t, _ in DataLoader(ds, batch_size=cfg.optim.batch_size, shuffle=False):
        out.append(model(frames.to(device), traj.to(device), index_t.to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def calibrate_checkpoint(
    model: TrampFormer,
    ckpt: dict[str, Any],
    path: Path,
    val: list[CachedClip],
    cfg: RunConfig,
    device: torch.device,
) -> CalibrationFit:
    """Fit the calibration of ``model`` (the weights of ``ckpt``) on the validation clips; rewrite ``path`` with it."""
    pred = predict(model.to(device), val, cfg, device)
    fit = fit_calibration(
        pred,
        np.array([c.record.label for c in val], dtype=np.float64),
        (cfg.data.label_min, cfg.data.label_max),
        what=str(ckpt.get("expression", path.parent.name)),
    )
    _save(path, {**ckpt, CHECKPOINT_KEY: fit.to_checkpoint()})
    return fit


def train_expression(cfg: RunConfig, data: ExpressionData, out_dir: Path, resume: bool) -> TrainResult:
    """Train one expression's model into ``out_dir`` (best.pt, last.pt, history.json)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.train.seed)
    device = pick_device(cfg.train.device)
    model = build_model(cfg, data.expression).to(device)
    optim = make_optimizer(cfg, model)
    sched = torch.optim.lr_scheduler.StepLR(optim, step_size=cfg.optim.step_size, gamma=cfg.optim.gamma)
    use_amp = cfg.train.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict[str, float]] = []
    best_rho, best_epoch, start = -2.0, -1, 0
    if resume and (out_dir / LAST).is_file():
        state = torch.load(out_dir / LAST, map_location=device, weights_only=False)
        model.load_state_dict(state["model"], strict=True)
        optim.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history, best_rho, best_epoch, start = state["history"], state["best_rho"], state["best_epoch"], state["epoch"]
        torch.set_rng_state(state["torch_rng"])
        log.info("%s: resumed at epoch %d", data.expression, start)
    train_ds = ClipSamples(
        data.train, sample_spec(cfg, model.cfg, train=True), seed=cfg.train.seed, replicate=cfg.data.replicate
    )
    gen = torch.Generator().manual_seed(cfg.train.seed)
    # drop_last: a batch of one gives BMC no gradient (models.md §1.7)
    loader = DataLoader(
        train_ds,
        batch_size=cfg.optim.batch_size,
        shuffle=True,
        drop_last=len(train_ds) > cfg.optim.batch_size,
        num_workers=cfg.train.workers,
        generator=gen,
    )
    t0 = time.monotonic()
    epoch = start
    for epoch in range(start, cfg.optim.epochs):
        model.train()
        train_ds.set_epoch(epoch)
        gen.manual_seed(cfg.train.seed * 1000 + epoch)
        losses = []
        bar = tqdm(loader, desc=f"{data.expression} epoch {epoch + 1}/{cfg.optim.epochs}", leave=False)
        for frames, traj, index_t, label in bar:
            autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
            with autocast:
                pred = model(frames.to(device), traj.to(device), index_t.to(device))
            loss = bmc_loss(pred.float(), label.to(device), cfg.optim.bmc_sigma)
            optim.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.step(optim)
            scaler.update()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        sched.step()
        val_pred = predict(model, data.val, cfg, device)
        val_label = np.array([c.record.label for c in data.val])
        rho = spearman(val_pred, val_label)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_spearman": rho})
        log.info(
            "%s epoch %d: loss %.4f, val Spearman %.3f", data.expression, epoch + 1, history[-1]["train_loss"], rho
        )
        if rho >= best_rho:  # ties go to the later, longer-trained epoch
            best_rho, best_epoch = rho, epoch + 1
            _save(out_dir / BEST, {"model": model.state_dict(), "model_config": model.cfg.to_dict(),
                                   "expression": data.expression, "epoch": epoch + 1, "val_spearman": rho,
                                   "data_hash": data.data_hash(), "landmarker": data.landmarker()})  # fmt: skip
        _save(
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
            },
        )
        if cfg.train.max_minutes and time.monotonic() - t0 > 60 * cfg.train.max_minutes:
            log.info("%s: time budget of %.1f min reached after epoch %d", data.expression, cfg.train.max_minutes,
                     epoch + 1)  # fmt: skip
            break
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    if (out_dir / BEST).is_file():
        best_model, best_ckpt = load_checkpoint(out_dir / BEST)
        fit = calibrate_checkpoint(best_model, best_ckpt, out_dir / BEST, data.val, cfg, device)
        c = fit.calibration
        log.info(
            "%s: calibration (%s, %d clips) scale %.4f offset %.4f; validation MAE raw %.3f -> calibrated %.3f",
            *(data.expression, c.fitted_on, c.n, c.scale, c.offset, fit.val_mae_raw, fit.val_mae_calibrated),
        )
    return TrainResult(data.expression, best_epoch, best_rho, len(history), history)


def train(cfg: RunConfig, run_dir: Path, resume: bool = False) -> list[TrainResult]:
    """Train every expression of the config into ``run_dir/<expression>/``; saves the resolved config first and
    ``data_report.json`` (clips per expression and part, clips left out with why) once the features are ready."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(dump(cfg))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    data = load_dataset(cfg)
    (run_dir / "data_report.json").write_text(json.dumps(data.report(), indent=1))
    results = [train_expression(cfg, d, run_dir / expr, resume) for expr, d in data.expressions.items()]
    summary = {r.expression: {"best_epoch": r.best_epoch, "val_spearman": r.best_val_spearman} for r in results}
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=1))
    return results
