"""The model beside its baselines as a text table (``feqa evaluate`` and ``benchmarks/baselines.py`` print it).

One row per expression: the model's Spearman and calibrated MAE (when a model was scored), each baseline's Spearman
and MAE, the Spearman ceiling of the labels, and the model's MAE as a share of the best baseline's. On a phantom set
:func:`bound_lines` adds the oracle readers of :mod:`trainer.bound` beside the target MAE (``TARGET_SHARE`` of the
best baseline's): which channels of the hidden truth a reader must use to get there.
"""

from __future__ import annotations

from typing import Any

from trainer.baselines import BASELINES
from trainer.bound import ORACLES

TARGET_SHARE = 0.8  # the acceptance bar: a model's MAE at most this share of the best baseline's

_SHORT = {
    "constant": "const",
    "length": "length",
    "distance": "dist",
    "kinematics": "kinem",
    "mean_displacement": "m.disp",
    "peak_displacement": "p.disp",
}


def comparison_lines(title: str, expressions: dict[str, dict[str, Any]]) -> list[str]:
    """Rows for ``expressions`` (metrics.json's per-expression dicts, or baseline-only dicts with ``baselines``,
    ``ceiling_spearman`` and ``n``)."""
    model = any("mae_calibrated" in m for m in expressions.values())
    head = f"{'expression':>14} {'n':>4} {'ceil':>5}"
    if model:
        head += f" | {'model rho':>9} {'MAE':>5}"
    for name in BASELINES:
        head += f" | {_SHORT[name] + ' rho':>10} {'MAE':>5}"
    if model:
        head += f" | {'MAE/best':>8}"
    lines = [title, head, "-" * len(head)]
    for expr, m in expressions.items():
        scored = "mae_calibrated" in m
        row = f"{expr:>14} {m['n']:>4} {m['ceiling_spearman']:>5.2f}"
        if model:
            row += f" | {m['spearman_calibrated']:>9.3f} {m['mae_calibrated']:>5.2f}" if scored else f" | {'-':>15}"
        for name in BASELINES:
            b = m["baselines"][name]
            row += f" | {b['spearman']:>10.3f} {b['mae']:>5.2f}"
        if model and scored:
            verdict = "beats" if m["mae_vs_best_baseline"] <= TARGET_SHARE else "NOT 20% below"
            row += f" | {m['mae_vs_best_baseline']:>8.2f} {verdict} {m['best_baseline']}"
        lines.append(row)
    return lines


def bound_lines(title: str, expressions: dict[str, dict[str, Any]]) -> list[str]:
    """Rows of the oracle readers' Spearman and MAE per expression with a ``bound`` (none without one), beside the
    target MAE; ``*`` marks a reader whose MAE reaches the target."""
    bounded = {e: m for e, m in expressions.items() if m.get("bound")}
    if not bounded:
        return []
    head = f"{'expression':>14} {'target':>6}"
    for name in ORACLES:
        head += f" | {name.removeprefix('oracle_') + ' rho':>18} {'MAE':>6}"
    lines = [title, head, "-" * len(head)]
    for expr, m in bounded.items():
        target = TARGET_SHARE * m["baselines"][m["best_baseline"]]["mae"]
        row = f"{expr:>14} {target:>6.2f}"
        for name in ORACLES:
            b = m["bound"][name]
            row += f" | {b['spearman']:>18.3f} {b['mae']:>5.2f}{'*' if b['mae'] <= target else ' '}"
        lines.append(row)
    return lines
