"""The optimisation itself: the optimizer a config names, and the epochs over one list of training clips.

:mod:`trainer.train` runs it with validation, checkpoints and resume around every epoch; :mod:`trainer.crossfit`
runs it for a fixed number of epochs on subject folds. Both get the same sampling (training-style random windows,
time reversal and flips, the training list replicated ``data.replicate`` times) and the same seeded batch order.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from trainer.bmc import training_loss
from trainer.config import RunConfig
from trainer.data.cache import CachedClip
from trainer.data.samples import ClipSamples, sample_spec
from trainer.models.qafe_motion import MotionHead, motion_head
from trainer.predict import model_inputs

log = logging.getLogger(__name__)

# called after each epoch with (epoch index from 0, mean training loss); True stops the run
AfterEpoch = Callable[[int, float], bool]


def make_optimizer(cfg: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.recipe == "sgd":
        return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.recipe == "adam":
        return torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    raise ValueError(f"optim.recipe must be 'adam' or 'sgd', got {o.recipe!r}")


def add_motion_head(cfg: RunConfig, model: nn.Module, optim: torch.optim.Optimizer) -> MotionHead | None:
    """The training-only movement head ``train.motion_aux`` asks for (None when off), on the model's device, its
    weights added to ``optim`` as a group of their own; call it before loading a saved optimizer state."""
    head = motion_head(model, cfg.train.motion_aux)
    if head is not None:
        head.to(next(model.parameters()).device)
        optim.add_param_group({"params": list(head.parameters())})
    return head


def make_scheduler(cfg: RunConfig, optim: torch.optim.Optimizer) -> torch.optim.lr_scheduler.StepLR:
    return torch.optim.lr_scheduler.StepLR(optim, step_size=cfg.optim.step_size, gamma=cfg.optim.gamma)


def train_epochs(
    cfg: RunConfig,
    model: nn.Module,
    optim: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.StepLR,
    clips: list[CachedClip],
    device: torch.device,
    start: int,
    after_epoch: AfterEpoch,
    desc: str,
    motion: MotionHead | None = None,
) -> None:
    """Epochs ``start`` .. ``optim.epochs - 1`` over ``clips``; ``after_epoch`` may stop the run early. With a
    ``motion`` head (:func:`add_motion_head`) each step adds ``train.motion_aux`` times its loss."""
    use_amp = cfg.train.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    spec = sample_spec(getattr(model, "cfg"), train=True, reverse_p=cfg.train.reverse_p, flip_p=cfg.train.flip_p,  # noqa: B009
                       colour_jitter=cfg.train.colour_jitter, scale_jitter=cfg.train.scale_jitter,
                       time_warp=cfg.train.time_warp, motion_target=motion is not None,
                       frame_rule=cfg.train.frame_rule)  # fmt: skip
    train_ds = ClipSamples(clips, spec, seed=cfg.train.seed, replicate=cfg.data.replicate)
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
    for epoch in range(start, cfg.optim.epochs):
        model.train()
        if motion is not None:
            motion.train()
        train_ds.set_epoch(epoch)
        gen.manual_seed(cfg.train.seed * 1000 + epoch)
        losses, motion_losses = [], []
        bar = tqdm(loader, desc=f"{desc} epoch {epoch + 1}/{cfg.optim.epochs}", leave=False)
        for batch in bar:
            autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
            with autocast:
                if motion is None:
                    pred = model(*model_inputs(model, batch, device))
                else:
                    pred, rgb, heat = getattr(model, "forward_per_frame")(*model_inputs(model, batch, device))  # noqa: B009
            loss = training_loss(cfg.optim.loss, pred.float(), batch["label"].to(device), cfg.optim.bmc_sigma)
            if motion is not None:
                aux = motion.loss(rgb.float(), heat.float(), batch["motion"].to(device))
                loss = loss + cfg.train.motion_aux * aux
                motion_losses.append(float(aux.detach()))
            optim.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.step(optim)
            scaler.update()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        sched.step()
        if motion_losses:
            log.info("%s epoch %d: movement loss %.3f (the share of the movement the features leave unexplained)",
                     desc, epoch + 1, float(np.mean(motion_losses)))  # fmt: skip
        if after_epoch(epoch, float(np.mean(losses))):
            break
