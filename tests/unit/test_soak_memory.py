"""The soak's Redis memory measure (benchmarks.soak.high_water): a high-water mark per half of the run, which the
allocator's page decay between rounds does not move, and which a real rise does."""

from __future__ import annotations

import math

import pytest

from benchmarks.soak import high_water

pytestmark = pytest.mark.unit


def _rounds(
    peaks: list[float], floor: float, round_s: float = 12.0, every_s: float = 2.0
) -> list[tuple[float, dict[str, float]]]:
    """Samples of one series over rounds: each round climbs to its peak, then falls to the floor by its end."""
    out = []
    steps = int(round_s / every_s)
    half = steps // 2
    for k, peak in enumerate(peaks):
        for i in range(steps):
            out.append((k * round_s + i * every_s, {"redis": floor + (peak - floor) * (1 - abs(i - half) / half)}))
    return out


def test_round_end_instants_swing_while_the_high_water_mark_stays() -> None:
    samples = _rounds([110.0] * 8, floor=70.0)
    # the freed pages go back late in one round and early in the next: instants at the same point differ by > 10 %
    samples[11] = (samples[11][0], {"redis": 100.0})
    ends = [s["redis"] for t, s in samples if t % 12.0 == 10.0]
    assert max(ends) / min(ends) > 1.1
    first, last = high_water(samples, "redis", 0.0, 96.0)
    assert first == last == pytest.approx(110.0)


def test_a_rising_high_water_mark_shows() -> None:
    samples = _rounds([100.0, 100.0, 100.0, 100.0, 112.0, 114.0, 116.0, 118.0], floor=70.0)
    first, last = high_water(samples, "redis", 0.0, 96.0)
    assert last / first - 1 == pytest.approx(0.18)


def test_an_empty_half_gives_nan_not_a_figure() -> None:
    samples = _rounds([100.0], floor=70.0)
    first, last = high_water(samples, "redis", 0.0, 100.0)
    assert first == pytest.approx(100.0) and math.isnan(last)
