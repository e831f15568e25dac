"""A patient's task scores over time: their own baseline band, the trend, and a flag when recent scores worsen.

Pure functions on numpy arrays (no web, database or Redis imports). The dashboard's patient page and the fleet
analytics agents (``fleet/``, Faust on Kafka) both compute with this one module, so a patient's band, trend and flag
are the same wherever they are computed. On every feqa scale a higher score is worse.

- :func:`session_means`: one value per session (the mean of its task scores; withheld scores are not values).
- :func:`baseline`: the band the patient's own early scores span: mean +/- ``k`` standard deviations of the first
  ``first_n`` sessions, or of the sessions inside a chosen period. The half-width is at least ``min_halfwidth`` of
  the scale's span, so a baseline of identical scores does not flag every later wobble.
- :func:`trend`: least-squares slope in scale points per 30 days (with the correlation), over all sessions.
- :func:`worsening`: set when the mean of the ``recent_n`` newest sessions after the baseline lies above the band.
- :func:`analyse`: all of the above for one patient and task.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

DAY_S = 86_400.0
Floats = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class Baseline:
    mean: float
    sd: float
    low: float
    high: float
    n: int
    start_ts: float
    end_ts: float
    source: str  # "first 3 sessions" | "period" | "none"


@dataclasses.dataclass(frozen=True)
class Trend:
    slope_per_30d: float
    intercept: float
    r: float
    n: int


@dataclasses.dataclass(frozen=True)
class Flag:
    worse: bool
    recent_mean: float
    recent_n: int
    margin: float  # how far the recent mean lies above the band's top (negative: inside or below)
    reason: str


@dataclasses.dataclass(frozen=True)
class Longitudinal:
    ts: list[float]
    values: list[float]
    baseline: Baseline
    trend: Trend
    flag: Flag

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _clean(dataclasses.asdict(self))
        return out


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def session_means(session_ts: Sequence[float], scores: Sequence[Sequence[float | None]]) -> tuple[Floats, Floats]:
    """(times, values) with one value per session that has at least one finite score, in time order."""
    ts_out, val_out = [], []
    for t, values in zip(session_ts, scores, strict=True):
        finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if finite:
            ts_out.append(float(t))
            val_out.append(float(np.mean(finite)))
    order = np.argsort(np.asarray(ts_out, dtype=np.float64), kind="stable")
    return np.asarray(ts_out, dtype=np.float64)[order], np.asarray(val_out, dtype=np.float64)[order]


def baseline(
    ts: Floats,
    values: Floats,
    *,
    scale_span: float,
    first_n: int = 3,
    period: tuple[float, float] | None = None,
    k: float = 2.0,
    min_halfwidth: float = 0.1,
) -> Baseline:
    """The patient's own band from the first ``first_n`` sessions, or from those in ``period`` (start, end)."""
    if first_n < 1:
        raise ValueError("a baseline needs at least one session")
    if period is not None:
        if period[1] < period[0]:
            raise ValueError("the baseline period ends before it starts")
        mask = (ts >= period[0]) & (ts <= period[1])
        source = "period"
    else:
        mask = np.zeros(len(ts), dtype=bool)
        mask[: min(first_n, len(ts))] = True
        source = f"first {first_n} sessions"
    picked = values[mask]
    if len(picked) == 0:
        nan = float("nan")
        return Baseline(nan, nan, nan, nan, 0, nan, nan, "none")
    mean = float(np.mean(picked))
    sd = float(np.std(picked, ddof=1)) if len(picked) > 1 else 0.0
    half = max(k * sd, min_halfwidth * scale_span)
    return Baseline(
        mean=mean,
        sd=sd,
        low=mean - half,
        high=mean + half,
        n=len(picked),
        start_ts=float(ts[mask].min()),
        end_ts=float(ts[mask].max()),
        source=source,
    )


def trend(ts: Floats, values: Floats) -> Trend:
    """Least-squares line through (days, value): slope per 30 days, value at the first session, correlation."""
    n = len(ts)
    if n < 2 or float(np.ptp(ts)) <= 0:
        return Trend(float("nan"), float(values[0]) if n else float("nan"), float("nan"), n)
    days = (ts - ts[0]) / DAY_S
    slope, intercept = np.polyfit(days, values, 1)
    r = float(np.corrcoef(days, values)[0, 1]) if float(np.std(values)) > 0 else 0.0
    return Trend(float(slope) * 30.0, float(intercept), r, n)


def worsening(ts: Floats, values: Floats, band: Baseline, *, recent_n: int = 2) -> Flag:
    """Whether the newest ``recent_n`` sessions after the baseline average above the band (higher is worse)."""
    if band.n == 0:
        return Flag(False, float("nan"), 0, float("nan"), "no baseline yet")
    after = values[ts > band.end_ts]
    if len(after) < recent_n:
        return Flag(False, float("nan"), len(after), float("nan"), f"needs {recent_n} sessions after the baseline")
    recent = float(np.mean(after[-recent_n:]))
    margin = recent - band.high
    if margin > 0:
        return Flag(True, recent, recent_n, margin, f"last {recent_n} sessions average {margin:.2f} above baseline")
    return Flag(False, recent, recent_n, margin, "within the baseline band")


def analyse(
    session_ts: Sequence[float],
    scores: Sequence[Sequence[float | None]],
    *,
    scale_min: float,
    scale_max: float,
    first_n: int = 3,
    period: tuple[float, float] | None = None,
    recent_n: int = 2,
    k: float = 2.0,
) -> Longitudinal:
    """Baseline, trend and worsening flag of one patient's task over sessions."""
    if scale_max <= scale_min:
        raise ValueError("the scale's maximum must exceed its minimum")
    ts, values = session_means(session_ts, scores)
    band = baseline(ts, values, scale_span=scale_max - scale_min, first_n=first_n, period=period, k=k)
    return Longitudinal(
        ts=[float(t) for t in ts],
        values=[float(v) for v in values],
        baseline=band,
        trend=trend(ts, values),
        flag=worsening(ts, values, band, recent_n=recent_n),
    )
