"""Windows every hop and at task end, the window quality gate, and coaching when quality stays bad."""

from __future__ import annotations

import pytest

from common.messages import Event, Window
from tracker.quality import COACH_TEXT, FrameSample, Thresholds, window_quality
from tracker.settings import TrackerSettings
from tracker.windows import SessionWindows

pytestmark = pytest.mark.unit
LIMITS = Thresholds.from_settings(TrackerSettings())


def _good(seq: int) -> FrameSample:
    return FrameSample(seq, True, 0.9, 2.0, 1.0, 120.0, 80.0, 150.0)


def _dark(seq: int) -> FrameSample:
    return FrameSample(seq, True, 0.9, 2.0, 1.0, 20.0, 80.0, 150.0)


def _windows(hop: int = 8) -> SessionWindows:
    return SessionWindows("s", hop, LIMITS, coach_after=3, coach_repeat_s=10.0)


def test_a_window_every_hop_with_the_active_task() -> None:
    w = _windows()
    w.on_event(Event(sid="s", type="task_start", ts=0, task="smile", seq=3), now=0)
    out: list[Window] = []
    for i in range(20):
        out.extend(w.on_sample(_good(i), now=i / 30)[0])
    assert [(x.reason, x.last_seq, x.task, x.task_start_seq) for x in out] == [
        ("hop", 7, "smile", 3),
        ("hop", 15, "smile", 3),
    ]
    assert out[0].quality["ok"] == 1.0 and out[0].quality["face_fraction"] == 1.0


def test_task_end_waits_for_its_frame() -> None:
    w = _windows(hop=100)
    w.on_event(Event(sid="s", type="task_start", ts=0, task="frown", seq=0), now=0)
    for i in range(5):
        w.on_sample(_good(i), now=0)
    assert w.on_event(Event(sid="s", type="task_end", ts=0, task="frown", seq=8), now=0.1) == []
    got = []
    for i in range(5, 10):
        got.extend(w.on_sample(_good(i), now=0.2)[0])
    assert [(x.reason, x.task, x.last_seq, x.task_start_seq) for x in got] == [("task_end", "frown", 8, 0)]
    # a task end naming no frame is due at once; one whose frame never comes is due after the wait
    assert [x.reason for x in w.on_event(Event(sid="s", type="task_end", ts=0, task="x"), now=1)] == ["task_end"]
    assert w.on_event(Event(sid="s", type="task_end", ts=0, task="y", seq=999), now=1) == []
    assert [x.task for x in w.due(now=10)] == ["y"]


def test_window_quality_counts_missing_frames_and_faces() -> None:
    samples = [_good(0), FrameSample(1, False), _good(4), _good(5)]  # seqs 2, 3 were dropped before the tracker
    q = window_quality(samples, LIMITS)
    assert q["missing"] == 2 and q["frames"] == 4
    assert q["face_fraction"] == pytest.approx(3 / 6)
    assert q["ok"] == 0.0


def test_coaching_after_bad_windows_in_a_row_and_not_too_often() -> None:
    w = _windows(hop=4)
    events: list[Event] = []
    for i in range(40):
        events.extend(w.on_sample(_dark(i), now=i * 0.1)[1])
    assert len(events) == 1  # 10 bad windows in 4 s: one message, repeated no sooner than 10 s
    assert events[0].type == "coach" and events[0].text == COACH_TEXT["too_dark"]
    assert events[0].seq == 11  # after the third bad window
    for i in range(40, 56):  # the light comes back: once the quality frames are all good, the count resets
        events.extend(w.on_sample(_good(i), now=5.0)[1])
    assert len(events) == 1 and w.bad_windows == 0
    for i in range(56, 90):  # dark again, long after the first message: coached again
        events.extend(w.on_sample(_dark(i), now=30.0)[1])
    assert len(events) == 2
