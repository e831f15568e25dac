"""PNG plots for a run directory (matplotlib, Agg backend): loss curves, predicted vs true, Spearman per expression."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from trainer.metrics import ExpressionMetrics


def loss_curves(history: list[dict[str, float]], path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("BMC loss")
    ax2 = ax.twinx()
    ax2.plot(epochs, [h["val_spearman"] for h in history], color="tab:orange", label="val Spearman")
    ax2.set_ylabel("Spearman")
    ax.set_title(title)
    fig.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def predicted_vs_true(
    expression: str, pred: list[float], label: list[float], path: Path, raw: list[float] | None = None
) -> None:
    """Calibrated test scores against the true ones, with the identity line; ``raw`` adds the uncalibrated output."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    values = label + pred
    if raw is not None:
        ax.scatter(label, raw, s=10, alpha=0.25, facecolors="none", edgecolors="grey", label="raw output")
        values += raw
    ax.scatter(label, pred, s=14, alpha=0.7, label="calibrated score")
    lo, hi = min(values), max(values)
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, label="identity")
    ax.set_xlabel("true score")
    ax.set_ylabel("predicted score (calibrated on validation)")
    ax.set_title(f"{expression}: calibrated test predictions")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def spearman_bars(results: list[ExpressionMetrics], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1.2 * len(results) + 2, 3.5))
    names = [r.expression for r in results]
    rho = [r.spearman for r in results]
    err = [[r.spearman - r.spearman_ci[0] for r in results], [r.spearman_ci[1] - r.spearman for r in results]]
    ax.bar(names, rho, yerr=err, capsize=4)
    ax.set_ylim(min(0.0, *rho) - 0.05, 1.0)
    ax.set_ylabel("Spearman (95 % CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
