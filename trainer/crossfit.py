"""Cross-fitted score calibration (``train.calibration = cross_fit``): the affine map fitted on out-of-fold predictions
of every training and validation subject instead of the validation clips alone.

The validation split is small (on the 46-subject acceptance set, 28 clips of 7 subjects), and an affine fit on it
carries that noise into every score. A model's predictions on its own training clips cannot replace it: they are
in-sample (the model has fitted those clips, so they sit closer to their labels and more spread out than on new
subjects). Cross-fitting gets predictions on unseen subjects for all of them: the training and validation subjects
are split into ``train.calibration_folds`` folds by subject; for each fold a model is trained from scratch on the
others, with the final model's recipe, seed and epoch count (its best epoch, so no fold peeks at its own held-out
subjects), and scores the held-out fold. The map is then fitted on those out-of-fold predictions and their labels
(:func:`trainer.calibration.fit_calibration`, the same refusals) and applied to the final model's output.

What it assumes: the final model's raw outputs sit on the scale the fold models' do (the same recipe on about as
many subjects; BMC does not pin the scale, so this is checked on the acceptance set, README). What it costs:
``calibration_folds`` more trainings of ``best epoch`` epochs each per expression, after the run. Test clips are
never used.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import numpy.typing as npt
import torch

from trainer.builders import build_model
from trainer.calibration import CalibrationFit, fit_calibration
from trainer.config import RunConfig
from trainer.data.cache import CachedClip
from trainer.data.dataset import ExpressionData
from trainer.loop import add_motion_head, make_optimizer, make_scheduler, train_epochs
from trainer.metrics import spearman
from trainer.predict import labels, predict
from trainer.runtime import seed_everything

log = logging.getLogger(__name__)

SOURCE = "cross_fit"


def subject_folds(clips: list[CachedClip], k: int, seed: int) -> list[list[CachedClip]]:
    """``clips`` split into ``k`` folds by subject (every clip of a subject in one fold), subjects shuffled by
    ``seed``; fold sizes in subjects differ by at most one."""
    subjects = sorted({c.record.subject for c in clips})
    if k < 2 or k > len(subjects):
        raise ValueError(f"{k} folds need between 2 and {len(subjects)} (the number of subjects)")
    order = np.random.default_rng(seed).permutation(len(subjects))
    fold_of = {subjects[j]: i % k for i, j in enumerate(order)}
    return [[c for c in clips if fold_of[c.record.subject] == f] for f in range(k)]


def out_of_fold(
    cfg: RunConfig, data: ExpressionData, epochs: int, device: torch.device
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Out-of-fold raw predictions and labels of every training and validation clip (fold by fold)."""
    fold_cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, epochs=epochs))
    folds = subject_folds(data.train + data.val, cfg.train.calibration_folds, cfg.train.seed)
    preds: list[npt.NDArray[np.float32]] = []
    ys: list[npt.NDArray[np.float64]] = []
    for i, held in enumerate(folds):
        fit_on = [c for j, fold in enumerate(folds) if j != i for c in fold]
        seed_everything(cfg.train.seed)
        model = build_model(fold_cfg, data.expression).to(device)
        optim = make_optimizer(fold_cfg, model)
        motion = add_motion_head(fold_cfg, model, optim)
        sched = make_scheduler(fold_cfg, optim)
        desc = f"{data.expression} cross-fit {i + 1}/{len(folds)}"
        train_epochs(fold_cfg, model, optim, sched, fit_on, device, 0, lambda _e, _l: False, desc, motion)
        pred = predict(model, held, device, cfg.optim.batch_size, cfg.train.eval_clips)
        preds.append(pred)
        ys.append(labels(held))
        log.info("%s: cross-fit fold %d of %d: %d epochs on %d clips, Spearman %.3f on the %d held-out clips",
                 data.expression, i + 1, len(folds), epochs, len(fit_on), spearman(pred, ys[-1]),
                 len(held))  # fmt: skip
    return np.concatenate(preds), np.concatenate(ys)


def cross_fit_calibration(cfg: RunConfig, data: ExpressionData, epochs: int, device: torch.device) -> CalibrationFit:
    """The calibration fitted on :func:`out_of_fold` predictions (see the module docstring)."""
    pred, label = out_of_fold(cfg, data, epochs, device)
    label_range = (cfg.data.label_min, cfg.data.label_max)
    return fit_calibration(pred, label, label_range, what=data.expression, source=SOURCE)
