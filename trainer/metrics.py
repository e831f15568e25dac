"""Evaluation metrics: Spearman per expression and their arithmetic mean, MAE, RMSE, Pearson's r (the UNBC-McMaster
figure), per-subject errors, bootstrap confidence intervals."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.stats import pearsonr, spearmanr


@dataclasses.dataclass(frozen=True)
class ExpressionMetrics:
    expression: str
    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    mae: float
    mae_ci: tuple[float, float]
    rmse: float
    per_subject_mae: dict[str, float]
    pearson: float = 0.0


def spearman(pred: npt.ArrayLike, label: npt.ArrayLike) -> float:
    """Spearman rho with average ranks for ties; 0 when either side is constant (rho is undefined there)."""
    p, y = np.asarray(pred, dtype=np.float64), np.asarray(label, dtype=np.float64)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(spearmanr(p, y).statistic)


def pearson(pred: npt.ArrayLike, label: npt.ArrayLike) -> float:
    """Pearson's r; 0 when either side is constant."""
    p, y = np.asarray(pred, dtype=np.float64), np.asarray(label, dtype=np.float64)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(pearsonr(p, y).statistic)


def bootstrap_ci(
    pred: npt.NDArray[np.float64], label: npt.NDArray[np.float64], stat: str, reps: int, seed: int
) -> tuple[float, float]:
    """95 % percentile interval of ``stat`` ("spearman" or "mae") over clips resampled with replacement."""
    return _interval(pred, label, lambda rng: rng.integers(0, pred.size, pred.size), stat, reps, seed)


def subject_bootstrap_ci(
    pred: npt.ArrayLike, label: npt.ArrayLike, subjects: list[str], stat: str, reps: int, seed: int
) -> tuple[float, float]:
    """95 % percentile interval of ``stat`` ("spearman" or "mae") over *subjects* resampled with replacement, each
    drawn subject bringing all its clips. Clips of one subject share its traits (speed, hold, expressiveness) and
    its severity level, so they are not independent: with few subjects a clip bootstrap is far too narrow (a length
    that ranks four subjects' eight clips at 0.78 is one lucky ordering of four people)."""
    p, y = np.asarray(pred, dtype=np.float64), np.asarray(label, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1 or len(subjects) != p.size or p.size == 0:
        raise ValueError("pred, label and subjects must be non-empty and of equal length")
    subj = np.asarray(subjects)
    groups = [np.flatnonzero(subj == s) for s in sorted(set(subjects))]
    return _interval(p, y, lambda rng: np.concatenate([groups[g] for g in rng.integers(0, len(groups), len(groups))]),
                     stat, reps, seed)  # fmt: skip


def _interval(
    p: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    draw: Callable[[np.random.Generator], npt.NDArray[np.intp]],
    stat: str,
    reps: int,
    seed: int,
) -> tuple[float, float]:
    """95 % percentile interval of ``stat`` over ``reps`` resamples, each the clip indices ``draw(rng)`` picks."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(reps):
        i = draw(rng)
        values.append(spearman(p[i], y[i]) if stat == "spearman" else float(np.abs(p[i] - y[i]).mean()))
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def expression_metrics(
    expression: str, pred: npt.ArrayLike, label: npt.ArrayLike, subjects: list[str], reps: int = 1000, seed: int = 0
) -> ExpressionMetrics:
    p, y = np.asarray(pred, dtype=np.float64), np.asarray(label, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1 or len(subjects) != p.size or p.size == 0:
        raise ValueError("pred, label and subjects must be non-empty and of equal length")
    err = p - y
    subj = np.asarray(subjects)
    return ExpressionMetrics(
        expression=expression,
        n=int(p.size),
        spearman=spearman(p, y),
        spearman_ci=bootstrap_ci(p, y, "spearman", reps, seed),
        mae=float(np.abs(err).mean()),
        mae_ci=bootstrap_ci(p, y, "mae", reps, seed),
        rmse=float(np.sqrt((err**2).mean())),
        per_subject_mae={str(s): float(np.abs(err[subj == s]).mean()) for s in sorted(set(subjects))},
        pearson=pearson(p, y),
    )


def mean_spearman(results: list[ExpressionMetrics]) -> float:
    """The papers' headline number: the arithmetic mean of per-expression rho (not Fisher-z)."""
    return float(np.mean([r.spearman for r in results])) if results else 0.0


def affine_calibration(pred: npt.ArrayLike, label: npt.ArrayLike) -> tuple[float, float]:
    """Least-squares ``(scale, offset)`` mapping predictions onto labels (fitted on validation clips, never on test).

    BMC ranks well but does not pin the output to the label scale (with a fixed sigma and small batches the extremes
    drift outwards and the whole range can sit shifted), so the raw MAE mixes ranking errors with a scale error; the
    calibrated MAE separates them. Constant predictions get scale 1 and only an offset.
    """
    p, y = np.asarray(pred, dtype=np.float64), np.asarray(label, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1 or p.size == 0:
        raise ValueError("pred and label must be non-empty 1-D arrays of equal length")
    if p.size < 2 or np.ptp(p) == 0:
        return 1.0, float(y.mean() - p.mean())
    scale, offset = np.polyfit(p, y, 1)
    return float(scale), float(offset)
