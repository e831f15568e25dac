"""Per-session windows and coaching: a ``Window`` every ``hop`` observations and one at each task end, each with the
quality of every frame it spans; a coaching ``Event`` when ``coach_after`` windows in a row fail the quality gate.

- A hop window names the newest T_p observations of the active task: ``last_seq`` is the newest observed frame,
  ``first_seq = max(last_seq - T_p + 1, task_start_seq)`` (never reaching before the task's start). T_p is
  ``frames`` (128), or ``rest_frames`` (64) for a task the protocol marks ``rest`` (common.protocols). With no
  task active (or before the task's first frame) it names the newest T_p observations, task "".
- A task_end window spans the whole task clip, ``task_start_seq`` .. the task's last frame. A task_end event that
  names a frame (``seq`` >= 0) is held until that frame has been observed (or for at most ``TASK_END_WAIT_S``).
- ``quality`` summarises every frame in ``[first_seq, last_seq]`` (tracker.quality.window_quality: frames not
  observed count as missing) and ``failed`` names the checks that failed.
- Coaching reacts to the recent frames only (the newest ``max(2 * hop, 16)``), so advice comes within a few hops.

Memory is bounded: a :class:`~tracker.quality.FrameSample` (a few numbers) per observed frame, the newest
``max_samples`` per session (default 1800, a minute at 30 fps: longer than any task); a task longer than that is
summarised over its newest ``max_samples`` frames.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools

from common.messages import Event, Window
from common.protocols import UnknownProtocol, get_protocol
from tracker.quality import COACH_TEXT, FrameSample, Thresholds, problems, window_quality
from tracker.settings import TrackerSettings

TASK_END_WAIT_S = 2.0


@dataclasses.dataclass(frozen=True)
class WindowConfig:
    hop: int = 8
    frames: int = 128  # T_p
    rest_frames: int = 64  # T_p of rest tasks
    max_samples: int = 1800
    coach_after: int = 3
    coach_repeat_s: float = 10.0

    @classmethod
    def from_settings(cls, s: TrackerSettings) -> WindowConfig:
        return cls(s.hop, s.window_frames, s.rest_window_frames, s.window_samples, s.coach_after_windows,
                   s.coach_repeat_s)  # fmt: skip


@dataclasses.dataclass
class _TaskEnd:
    task: str
    rep: int
    start_seq: int
    target_seq: int
    deadline: float


class SessionWindows:
    """Window and coaching state of one session."""

    def __init__(
        self, sid: str, config: WindowConfig, limits: Thresholds, protocol: str = "", landmarker: str = ""
    ) -> None:
        self.sid = sid
        self.config = config
        self.limits = limits
        self.protocol = protocol
        self.landmarker = landmarker
        self.task = ""
        self.rep = 0
        self.task_start_seq = -1
        self.last_seq = -1
        self.since_hop = 0
        self.samples: collections.deque[FrameSample] = collections.deque(maxlen=max(config.max_samples, 16))
        self.bad_windows = 0
        self.last_coached: dict[str, float] = {}
        self._ends: list[_TaskEnd] = []

    def task_frames(self, task: str) -> int:
        """T_p of a task: the rest T_p for a protocol's rest task, else the normal one."""
        try:
            rest = bool(task) and get_protocol(self.protocol).task(task).rest
        except UnknownProtocol:
            rest = False
        return self.config.rest_frames if rest else self.config.frames

    def replay(self, event: Event) -> None:
        """Apply a past event (on taking a session over) without emitting anything."""
        if event.type == "task_start":
            self.task, self.task_start_seq, self.rep = event.task, event.seq, event.rep
        elif event.type in ("task_end", "session_end"):
            self.task, self.task_start_seq = "", -1

    def on_event(self, event: Event, now: float) -> list[Window]:
        """A new session event; returns windows that are due now."""
        if event.type == "task_start":
            self.task, self.task_start_seq = event.task, event.seq if event.seq >= 0 else self.last_seq + 1
            self.rep = event.rep
        elif event.type == "task_end":
            task = event.task or self.task
            rep = event.rep or self.rep
            self._ends.append(_TaskEnd(task, rep, self.task_start_seq, event.seq, now + TASK_END_WAIT_S))
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
        if self.since_hop >= self.config.hop:
            self.since_hop = 0
            windows.append(self._hop(now))
            event = self._coach(now)
            if event is not None:
                coach.append(event)
        return windows, coach

    def due(self, now: float) -> list[Window]:
        """Held task-end windows whose frame has been observed or whose wait is over."""
        ready = [e for e in self._ends if e.target_seq <= self.last_seq or now >= e.deadline]
        if not ready:
            return []
        self._ends = [e for e in self._ends if e not in ready]
        out = []
        for e in ready:
            last = e.target_seq if 0 <= e.target_seq <= self.last_seq else self.last_seq
            first = e.start_seq if e.start_seq >= 0 else self._oldest(last)
            out.append(self._window("task_end", e.task, e.rep, first, max(first, last), e.start_seq, now))
        if any(e.task == self.task for e in ready):  # the task stays active until its end window is out
            self.task, self.task_start_seq = "", -1
        return out

    def flush(self) -> list[Window]:
        """Every held task-end window, now (the session ended)."""
        for e in self._ends:
            e.deadline = 0.0
        return self.due(0.0)

    def _hop(self, now: float) -> Window:
        last = self.last_seq
        task, start = self.task, self.task_start_seq
        if task and last < start:  # the task's first frame is not here yet: the newest frames have no task
            task, start = "", -1
        first = max(last - self.task_frames(task) + 1, start, 0)
        return self._window("hop", task, self.rep if task else 0, first, last, start, now)

    def _oldest(self, last: int) -> int:
        return min((s.seq for s in self.samples if s.seq <= last), default=max(last, 0))

    def _window(self, reason: str, task: str, rep: int, first: int, last: int, start: int, now: float) -> Window:
        span = [s for s in self.samples if first <= s.seq <= last]
        quality = window_quality(sorted(span, key=lambda s: s.seq), self.limits, first, last)
        return Window(sid=self.sid, protocol=self.protocol, task=task, rep=rep, reason=reason, first_seq=first,
                      last_seq=last, task_start_seq=start, created_ts=now, landmarker=self.landmarker, quality=quality,
                      failed=tuple(problems(quality, self.limits)))  # fmt: skip

    def _coach(self, now: float) -> Event | None:
        n = max(2 * self.config.hop, 16)
        recent = list(itertools.islice(reversed(self.samples), n))[::-1]
        quality = window_quality(recent, self.limits, recent[0].seq, recent[-1].seq) if recent else {}
        found = problems(quality, self.limits)
        if not found:
            self.bad_windows = 0
            return None
        self.bad_windows += 1
        if self.bad_windows < self.config.coach_after:
            return None
        text = COACH_TEXT[found[0]]
        if now - self.last_coached.get(text, -1e18) < self.config.coach_repeat_s:
            return None
        self.last_coached[text] = now
        return Event(sid=self.sid, type="coach", ts=now, task=self.task, text=text, seq=self.last_seq)
