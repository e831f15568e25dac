"""Longitudinal functions: baseline band, trend, worsening flag (pure numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from common.longitudinal import DAY_S, analyse, baseline, session_means, trend, worsening

pytestmark = pytest.mark.unit

T0 = 1_700_000_000.0


def _days(*d: float) -> list[float]:
    return [T0 + x * DAY_S for x in d]


def test_session_means_skip_withheld_and_sort_by_time() -> None:
    ts, values = session_means(_days(2, 0, 1), [[2.0, 3.0], [None], [1.0, None, float("nan")]])
    assert list(ts) == _days(1, 2) and list(values) == [1.0, 2.5]


def test_a_stable_patient_is_not_flagged_and_a_worsening_one_is() -> None:
    stable = analyse(_days(0, 7, 14, 21, 28), [[1.0], [1.2], [0.9], [1.1], [1.0]], scale_min=0, scale_max=4)
    assert stable.baseline.n == 3 and stable.baseline.low < 1.0 < stable.baseline.high
    assert not stable.flag.worse and stable.flag.reason == "within the baseline band"
    worse = analyse(_days(0, 7, 14, 21, 28), [[1.0], [1.2], [0.9], [2.4], [2.8]], scale_min=0, scale_max=4)
    assert worse.flag.worse and worse.flag.margin > 0 and worse.flag.recent_mean == pytest.approx(2.6)
    assert worse.trend.slope_per_30d > 1.0  # points per 30 days, rising = worse
    # improvement (lower is better) is never a worsening flag
    better = analyse(_days(0, 7, 14, 21, 28), [[2.0], [2.1], [1.9], [0.5], [0.4]], scale_min=0, scale_max=4)
    assert not better.flag.worse and better.trend.slope_per_30d < 0


def test_identical_baseline_scores_get_a_minimum_band() -> None:
    ts = np.asarray(_days(0, 1, 2))
    band = baseline(ts, np.array([2.0, 2.0, 2.0]), scale_span=4.0, first_n=3)
    assert band.sd == 0 and band.high - band.mean == pytest.approx(0.4)
    # a wobble inside that band does not flag
    flag = worsening(np.asarray(_days(0, 1, 2, 3, 4)), np.array([2, 2, 2, 2.3, 2.2]), band)
    assert not flag.worse


def test_baseline_from_a_period_and_bad_requests() -> None:
    ts = np.asarray(_days(0, 10, 20, 30, 40))
    values = np.array([3.0, 1.0, 1.2, 1.1, 2.5])
    band = baseline(ts, values, scale_span=4.0, period=(T0 + 5 * DAY_S, T0 + 25 * DAY_S))
    assert band.n == 2 and band.source == "period" and band.mean == pytest.approx(1.1)
    empty = baseline(ts, values, scale_span=4.0, period=(T0 + 100 * DAY_S, T0 + 200 * DAY_S))
    assert empty.n == 0 and math.isnan(empty.mean)
    assert worsening(ts, values, empty).reason == "no baseline yet"
    with pytest.raises(ValueError, match="ends before"):
        baseline(ts, values, scale_span=4.0, period=(T0 + 10, T0))
    with pytest.raises(ValueError, match="at least one"):
        baseline(ts, values, scale_span=4.0, first_n=0)
    with pytest.raises(ValueError, match="maximum"):
        analyse([], [], scale_min=4, scale_max=0)


def test_too_few_sessions_say_so_and_serialise_without_nan() -> None:
    one = analyse(_days(0), [[1.0]], scale_min=1, scale_max=5)
    assert one.flag.reason == "needs 2 sessions after the baseline" and math.isnan(one.trend.slope_per_30d)
    out = one.as_dict()
    assert out["trend"]["slope_per_30d"] is None and out["values"] == [1.0]
    none = analyse([], [], scale_min=0, scale_max=3)
    assert none.as_dict()["baseline"]["source"] == "none"
    assert trend(np.asarray(_days(0, 30)), np.array([1.0, 2.0])).slope_per_30d == pytest.approx(1.0)
