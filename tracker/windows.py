"""Per-session windows and coaching: a ``Window`` every ``hop`` observations and one at each task end, with the
window's quality; a coaching ``Event`` when ``coach_after_windows`` windows in a row fail the quality gate.

A task_end event that names a frame (``seq`` >= 0) is held until that frame has been observed (or for at most
``TASK_END_WAIT_S``), so the task window covers the whole task.
"""

from __future__ import annotations

import collections
import dataclasses

from common.messages import Event, Window
from tracker.quality import COACH_TEXT, FrameSample, Thresholds, problems, window_quality

TASK_END_WAIT_S = 2.0


@dataclasses.dataclass
class _TaskEnd:
    task: str
    start_seq: int
    target_seq: int
    deadline: float


class SessionWindows:
    """Window and coaching state of one session."""

    def __init__(
        self,
        sid: str,
        hop: int,
        limits: Thresholds,
        coach_after: int,
        coach_repeat_s: float,
        protocol: str = "",
        landmarker: str = "",
    ) -> None:
        self.sid = sid
        self.protocol = protocol
        self.landmarker = landmarker
        self.rep = 0
        self.hop = hop
        self.limits = limits
        self.coach_after = coach_after
        self.coach_repeat_s = coach_repeat_s
        self.task = ""
        self.task_start_seq = -1
        self.last_seq = -1
        self.since_hop = 0
        self.samples: collections.deque[FrameSample] = collections.deque(maxlen=max(2 * hop, 16))
        self.bad_windows = 0
        self.last_coached: dict[str, float] = {}
        self._ends: list[_TaskEnd] = []

    def replay(self, event: Event) -> None:
        """Apply a past event (on taking a session over) without emitting anything."""
        if event.type == "task_start":
            self.task, self.task_start_seq = event.task, event.seq
        elif event.type in ("task_end", "session_end"):
            self.task, self.task_start_seq = "", -1

    def on_event(self, event: Event, now: float) -> list[Window]:
        """A new session event; returns windows that are due now."""
        if event.type == "task_start":
            self.task, self.task_start_seq = event.task, event.seq if event.seq >= 0 else self.last_seq + 1
            self.rep = event.rep
        elif event.type == "task_end":
            task = event.task or self.task
            self._ends.append(_TaskEnd(task, self.task_start_seq, event.seq, now + TASK_END_WAIT_S))
        elif event.type == "session_end":
            return self.flush()
        return self.due(now)

    def on_sample(self, sample: FrameSample, now: float) -> tuple[list[Window], list[Event]]:
        """One observation; returns (windows, coaching events) due."""
        self.samples.append(sample)
        self.last_seq = max(self.last_seq, sample.seq)
        self.since_hop += 1
        windows = self.due(now)
        coach: list[Event] = []
        if self.since_hop >= self.hop:
            self.since_hop = 0
            quality = window_quality(list(self.samples), self.limits)
            windows.append(self._window("hop", self.task, self.task_start_seq, quality, now))
            event = self._coach(quality, now)
            if event is not None:
                coach.append(event)
        return windows, coach

    def due(self, now: float) -> list[Window]:
        """Held task-end windows whose frame has been observed or whose wait is over."""
        ready = [e for e in self._ends if e.target_seq <= self.last_seq or now >= e.deadline]
        if not ready:
            return []
        self._ends = [e for e in self._ends if e not in ready]
        quality = window_quality(list(self.samples), self.limits)
        out = [self._window("task_end", e.task, e.start_seq, quality, now, e.target_seq) for e in ready]
        if any(e.task == self.task for e in ready):  # the task stays active until its end window is out
            self.task, self.task_start_seq = "", -1
        return out

    def flush(self) -> list[Window]:
        """Every held task-end window, now (the session ended)."""
        for e in self._ends:
            e.deadline = 0.0
        return self.due(0.0)

    def _window(
        self, reason: str, task: str, start: int, quality: dict[str, float], now: float, end_seq: int = -1
    ) -> Window:
        last = end_seq if 0 <= end_seq <= self.last_seq else self.last_seq  # a task window ends at its task's end
        first = max(start, self.samples[0].seq if self.samples else last) if reason == "hop" else max(start, 0)
        return Window(sid=self.sid, protocol=self.protocol, task=task, rep=self.rep, reason=reason, first_seq=first,
                      last_seq=last, task_start_seq=start, created_ts=now, landmarker=self.landmarker, quality=quality,
                      failed=tuple(problems(quality, self.limits)))  # fmt: skip

    def _coach(self, quality: dict[str, float], now: float) -> Event | None:
        found = problems(quality, self.limits)
        if not found:
            self.bad_windows = 0
            return None
        self.bad_windows += 1
        if self.bad_windows < self.coach_after:
            return None
        text = COACH_TEXT[found[0]]
        if now - self.last_coached.get(text, -1e18) < self.coach_repeat_s:
            return None
        self.last_coached[text] = now
        return Event(sid=self.sid, type="coach", ts=now, task=self.task, text=text, seq=self.last_seq)
