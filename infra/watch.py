"""``feqa watch SID``: what the pipeline makes of a session, one line a second, until the session ends.

Each line counts the observations the tracker published in that second (frames, how many had a face, and why the
others had none), names the task under way, and shows the newest score or why it was withheld. It reads the
session's streams with plain reads (no consumer group), so watching never takes work from a service.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

from common.bus import Bus
from common.errors import ConfigError
from common.messages import Event, Obs, Score
from common.session_store import SessionStore
from common.settings import CommonSettings
from common.streams import EVENTS, OBS, SCORES, StreamSpec

ADVICE = {
    "no_landmarker": "the tracker has no landmarker for camera faces (see the warnings of feqa up)",
    "no_face": "no face in view",
    "stale": "frames reached the tracker late (the machine is busy)",
}


class _Line:
    """What one second of a session looked like."""

    def __init__(self) -> None:
        self.frames = 0
        self.faces = 0
        self.reasons: collections.Counter[str] = collections.Counter()

    def text(self, state: str, task: str, score: str) -> str:
        parts = [time.strftime("%H:%M:%S"), f"{state:<7}", f"{self.frames:>3} frames", f"{self.faces:>3} with a face"]
        if self.reasons:
            reason, _ = self.reasons.most_common(1)[0]
            parts.append(f"({reason}: {ADVICE.get(reason, 'see the tracker log')})")
        parts.append(f"task {task or '-'}")
        if score:
            parts.append(score)
        return "  ".join(parts)


async def watch_session(common: CommonSettings, sid: str, seconds: float | None, echo: Callable[[str], Any]) -> int:
    """Print a line a second about session ``sid`` until it ends (or ``seconds`` pass); 0 on a normal end."""
    try:
        bus = await Bus.from_settings(common, name="watch")
    except Exception as exc:
        raise ConfigError(f"cannot reach Redis at {common.redis_url} ({exc}); is feqa up running?") from None
    try:
        store = SessionStore(bus)
        info = await store.get(sid)
        if info is None:
            raise ConfigError(f"no session {sid[:40]} in the Redis at {common.redis_url}")
        echo(f"session {sid}: {info.protocol}, patient {info.patient_id}, {info.state}")
        cursors: dict[tuple[StreamSpec[Any], str | None], str] = {(OBS, sid): "0-0", (EVENTS, sid): "0-0",
                                                                  (SCORES, sid): "0-0"}  # fmt: skip
        task, score, observed = "", "", 0
        deadline = None if seconds is None else time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            line, tick = _Line(), time.monotonic() + 1.0
            while (left := tick - time.monotonic()) > 0:
                for d in await bus.tail(cursors, count=500, block_ms=max(1, min(int(left * 1000), 500))):
                    cursors[(d.spec, sid)] = d.id
                    msg = d.message
                    if isinstance(msg, Obs):
                        line.frames += 1
                        line.faces += int(msg.face)
                        if not msg.face:
                            line.reasons[msg.reason or "no_face"] += 1
                    elif isinstance(msg, Event) and msg.type in ("task_start", "task_end"):
                        task = f"{msg.task} rep {msg.rep}" if msg.type == "task_start" else ""
                    elif isinstance(msg, Score):
                        score = _score_text(msg)
            observed += line.frames
            info = await store.get(sid)
            state = info.state if info is not None else "gone"
            echo(line.text(state, task, score))
            if info is None or info.ended:
                reason = info.end_reason if info is not None else "expired"
                echo(f"session {sid} ended ({reason}); {observed} frames observed while watching")
                return 0
        return 0
    finally:
        await bus.close()


def _score_text(s: Score) -> str:
    if s.score is None:
        return f"{s.kind} score withheld ({s.withheld})"
    return f"{s.kind} score {s.score:.2f} on {s.scale_min:g}-{s.scale_max:g} ({s.model} {s.version})"
