"""Capture times from the sender's RTP clock (ingest.clock): exact spacing whatever the arrival, no trust in the
sender's wall clock, tighter bounds approached by slewing, RTP wrap-around."""

from __future__ import annotations

import itertools

import pytest

from ingest.clock import NTP_EPOCH_OFFSET, RTP_WRAP, SenderClock

pytestmark = pytest.mark.unit
FPS = 20
STEP = 90_000 // FPS


def _ntp(t: float) -> int:
    return int((t + NTP_EPOCH_OFFSET) * RTP_WRAP)


def test_bursty_arrivals_keep_the_capture_spacing() -> None:
    clock = SenderClock()
    t0 = 5000.0
    arrivals = []
    release = t0 + 19 / FPS + 0.4
    for i in range(40):  # frames 10..19 sat in a queue and arrive together at ``release``; later ones queue behind
        due = t0 + i / FPS + 0.01
        arrivals.append(max(due, release) if i >= 10 else due)
    captures = [clock.capture_time(i * STEP, a) for i, a in enumerate(arrivals)]
    assert all(b - a == pytest.approx(1 / FPS, abs=1e-9) for a, b in itertools.pairwise(captures))
    assert all(c <= a + 1e-9 for c, a in zip(captures, arrivals, strict=True))
    assert captures[0] == pytest.approx(t0 + 0.01)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) > 0.8 and min(gaps) == 0.0  # what arrival stamps would have said


def test_a_tighter_bound_is_approached_by_slewing_never_stepping() -> None:
    clock = SenderClock(slew=0.25)
    first = clock.capture_time(0, 100.3)  # the first frame was 0.3 s late
    captures = [first] + [clock.capture_time(i * STEP, 100.0 + i / FPS + 0.002) for i in range(1, 60)]
    gaps = [b - a for a, b in itertools.pairwise(captures)]
    assert all(0.75 / FPS - 1e-9 <= g <= 1 / FPS + 1e-9 for g in gaps)  # rising, at most 25 % squeezed
    assert captures[-1] == pytest.approx(100.0 + 59 / FPS + 0.002, abs=1e-6)  # converged on the tight bound
    assert clock.base == clock.target


def test_sender_reports_tighten_the_bound_and_the_sender_clock_is_not_trusted() -> None:
    clock = SenderClock()
    origin = RTP_WRAP - 3 * STEP  # the stream's RTP timestamps wrap after the third frame
    for i in range(10):  # frames arrive 40 ms after capture (decode and jitter buffer)
        clock.capture_time(i * STEP, 200.0 + i / FPS + 0.04)
    # a report sent when RTP time reached frame 9's, arriving 2 ms later; the sender's clock is an hour fast
    rtp = (origin + 9 * STEP) % RTP_WRAP
    clock.on_sender_report(rtp, _ntp(200.0 + 9 / FPS + 3600.0), 200.0 + 9 / FPS + 0.002, origin)
    assert clock.reports == 1 and clock.sender_offset_s == pytest.approx(-3600.0 + 0.002, abs=1e-3)
    assert clock.target == pytest.approx(200.002)
    for i in range(10, 40):
        c = clock.capture_time(i * STEP, 200.0 + i / FPS + 0.04)
    assert c == pytest.approx(200.0 + 39 / FPS + 0.002, abs=1e-6)  # on our clock, 2 ms before the report
    before = clock.target
    clock.on_sender_report(rtp, _ntp(0.0), 500.0, None)  # no origin known: counted only
    assert clock.reports == 2 and clock.target == before


def test_no_pts_falls_back_to_arrival() -> None:
    assert SenderClock().capture_time(None, 42.5) == 42.5
