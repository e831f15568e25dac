"""Windows every hop and at task end (T_p frames, never before the task's start; the whole task clip), the quality
of every frame a window spans, bounded memory, and coaching when quality stays bad."""

from __future__ import annotations

import pytest

from common.messages import Event, Window
from tracker.quality import COACH_TEXT, FrameSample, Thresholds, window_quality
from tracker.settings import TrackerSettings
from tracker.windows import SessionWindows, WindowConfig

pytestmark = pytest.mark.unit
LIMITS = Thresholds.from_settings(TrackerSettings())


def _good(seq: int) -> FrameSample:
    return FrameSample(seq, True, 0.9, 2.0, 1.0, 120.0, 80.0, 150.0)


def _dark(seq: int) -> FrameSample:
    return FrameSample(seq, True, 0.9, 2.0, 1.0, 20.0, 80.0, 150.0)


def _windows(hop: int = 8, frames: int = 128, rest_frames: int = 64, max_samples: int = 1800) -> SessionWindows:
    config = WindowConfig(hop=hop, frames=frames, rest_frames=rest_frames, max_samples=max_samples, coach_after=3,
                          coach_repeat_s=10.0)  # fmt: skip
    return SessionWindows("s", config, LIMITS, protocol="pfed5", landmarker="phantom")


def _start(w: SessionWindows, task: str, seq: int, rep: int = 1) -> None:
    w.on_event(Event(sid="s", type="task_start", ts=0, task=task, seq=seq, rep=rep), now=0)


def test_hop_windows_name_the_newest_tp_frames_of_the_task() -> None:
    w = _windows(hop=8, frames=32)
    _start(w, "smile", 3)
    out: list[Window] = []
    for i in range(48):
        out.extend(w.on_sample(_good(i), now=i / 30)[0])
    assert [(x.reason, x.first_seq, x.last_seq, x.task, x.task_start_seq, x.rep) for x in out] == [
        ("hop", 3, 7, "smile", 3, 1),  # never before the task's start
        ("hop", 3, 15, "smile", 3, 1),
        ("hop", 3, 23, "smile", 3, 1),
        ("hop", 3, 31, "smile", 3, 1),
        ("hop", 8, 39, "smile", 3, 1),  # T_p = 32 frames
        ("hop", 16, 47, "smile", 3, 1),
    ]
    assert all(x.ok and x.quality["face_fraction"] == 1.0 and x.landmarker == "phantom" for x in out)
    assert out[-1].quality["span"] == 32 and out[-1].quality["frames"] == 32


def test_rest_tasks_use_the_rest_tp_and_no_task_windows_have_no_task() -> None:
    w = _windows(hop=16, frames=128, rest_frames=64)
    out: list[Window] = []
    for i in range(160):
        out.extend(w.on_sample(_good(i), now=0)[0])
    assert (out[-1].task, out[-1].first_seq, out[-1].last_seq, out[-1].rep) == ("", 32, 159, 0)
    _start(w, "rest", 160)
    for i in range(160, 320):
        out.extend(w.on_sample(_good(i), now=0)[0])
    assert (out[-1].task, out[-1].first_seq, out[-1].last_seq) == ("rest", 256, 319)
    assert w.task_frames("rest") == 64 and w.task_frames("smile") == 128 and w.task_frames("") == 128


def test_task_end_spans_the_whole_clip_and_waits_for_its_frame() -> None:
    w = _windows(hop=1000)
    _start(w, "frown", 2, rep=2)
    for i in range(5):
        w.on_sample(_good(i), now=0)
    assert w.on_event(Event(sid="s", type="task_end", ts=0, task="frown", seq=300, rep=2), now=0.1) == []
    got = []
    for i in range(5, 320):
        got.extend(w.on_sample(_good(i), now=0.2)[0])
    assert [(x.reason, x.task, x.rep, x.first_seq, x.last_seq, x.task_start_seq) for x in got] == [
        ("task_end", "frown", 2, 2, 300, 2)  # 299 frames: the whole clip, not T_p
    ]
    assert got[0].quality["span"] == 299 and got[0].quality["frames"] == 299
    # a task end naming no frame is due at once; one whose frame never comes is due after the wait
    assert [x.reason for x in w.on_event(Event(sid="s", type="task_end", ts=0, task="x"), now=1)] == ["task_end"]
    assert w.on_event(Event(sid="s", type="task_end", ts=0, task="y", seq=999), now=1) == []
    assert [(x.task, x.last_seq) for x in w.due(now=10)] == [("y", 319)]


def test_quality_covers_every_frame_of_the_window() -> None:
    w = _windows(hop=1000)
    _start(w, "smile", 0)
    for i in range(60):  # dark for the first 50 frames of the task, then lit: the newest 16 alone look fine
        w.on_sample(_dark(i) if i < 50 else _good(i), now=0)
    (end,) = w.on_event(Event(sid="s", type="task_end", ts=0, task="smile", seq=59), now=0)
    assert end.failed == ("too_dark",) and not end.ok
    assert end.quality["frames"] == 60 and end.quality["brightness"] == pytest.approx((50 * 20 + 10 * 120) / 60)


def test_window_quality_counts_missing_frames_and_faces() -> None:
    samples = [_good(0), FrameSample(1, False), _good(4), _good(5)]  # seqs 2, 3 were dropped before the tracker
    q = window_quality(samples, LIMITS)
    assert q["missing"] == 2 and q["frames"] == 4 and q["span"] == 6
    assert q["face_fraction"] == pytest.approx(3 / 6)
    assert q["ok"] == 0.0
    wide = window_quality(samples, LIMITS, 0, 9)  # the window names 10 frames; 4 were seen
    assert (wide["missing"], wide["face_fraction"]) == (6, pytest.approx(0.3))


def test_memory_per_session_is_bounded() -> None:
    w = _windows(hop=8, max_samples=200)
    _start(w, "smile", 0)
    for i in range(5000):
        w.on_sample(_good(i), now=0)
    assert len(w.samples) == 200
    (end,) = w.on_event(Event(sid="s", type="task_end", ts=0, task="smile", seq=4999), now=0)
    assert (end.first_seq, end.last_seq, end.quality["frames"]) == (0, 4999, 200)  # named whole, summarised newest


def test_coaching_after_bad_windows_in_a_row_and_not_too_often() -> None:
    w = _windows(hop=4)
    events: list[Event] = []
    for i in range(40):
        events.extend(w.on_sample(_dark(i), now=i * 0.1)[1])
    assert len(events) == 1  # 10 bad windows in 4 s: one message, repeated no sooner than 10 s
    assert events[0].type == "coach" and events[0].text == COACH_TEXT["too_dark"]
    assert events[0].seq == 11  # after the third bad window
    for i in range(40, 56):  # the light comes back: once the recent frames are all good, the count resets
        events.extend(w.on_sample(_good(i), now=5.0)[1])
    assert len(events) == 1 and w.bad_windows == 0
    for i in range(56, 90):  # dark again, long after the first message: coached again
        events.extend(w.on_sample(_dark(i), now=30.0)[1])
    assert len(events) == 2
