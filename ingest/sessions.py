"""Session lifecycle in Redis: the ``session:{sid}`` hash, the sessions announcements and session events."""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import time

from common.bus import Bus
from common.logs import session_logger
from common.messages import Event, SessionAnnounce
from common.streams import EVENTS, SESSIONS

log = logging.getLogger(__name__)

CONSENT_FLAGS = ("live_scoring", "recording", "analytics", "training")


@dataclasses.dataclass(frozen=True)
class SessionSpec:
    """What a clinician (or the CLI) asks for when a session is created."""

    patient_id: str
    protocol: str
    consent: dict[str, bool]
    fps: float
    source: str = "webrtc"  # "webrtc" | "file"
    phantom: str = ""  # phantom.spec.PatientSpec JSON for synthetic patients


def new_sid() -> str:
    """A fresh session id (no characters that Redis keys or hash tags reject)."""
    return "s" + secrets.token_hex(8)


class SessionStore:
    """Writes a session's state and announcements. Ending is idempotent: the first reason wins."""

    def __init__(self, bus: Bus, ttl_s: int) -> None:
        self._bus = bus
        self._ttl_s = ttl_s
        self._ended: set[str] = set()

    async def create(self, spec: SessionSpec, sid: str | None = None) -> str:
        sid = sid or new_sid()
        now = time.time()
        values: dict[str, str | int | float] = {
            "sid": sid,
            "patient_id": spec.patient_id,
            "protocol": spec.protocol,
            "consent": json.dumps({k: bool(spec.consent.get(k, False)) for k in CONSENT_FLAGS}),
            "state": "created",
            "source": spec.source,
            "fps": spec.fps,
            "created": now,
        }
        for flag in CONSENT_FLAGS:
            values[f"consent_{flag}"] = int(bool(spec.consent.get(flag, False)))
        if spec.phantom:
            values["phantom"] = spec.phantom
        await self._bus.set_session(sid, values, ttl_s=self._ttl_s)
        session_logger(log, sid).info("session created for protocol %s (%s)", spec.protocol, spec.source)
        return sid

    async def start(self, sid: str, protocol: str) -> None:
        """The patient joined (or the file opened): state ``live`` and a ``started`` announcement."""
        await self._bus.set_session(sid, {"state": "live", "started": time.time()})
        await self._bus.publish(SESSIONS, SessionAnnounce(sid=sid, state="started", protocol=protocol, ts=time.time()))

    async def update(self, sid: str, values: dict[str, str | int | float]) -> None:
        await self._bus.set_session(sid, values)

    async def event(self, sid: str, protocol: str, type_: str, *, task: str = "", rep: int = 0, seq: int = -1) -> Event:
        """Publish a session event (task_start, task_end, marker) to ``events:{sid}``."""
        event = Event(sid=sid, type=type_, ts=time.time(), protocol=protocol, task=task, rep=rep, seq=seq)
        await self._bus.publish(EVENTS, event)
        return event

    def ended(self, sid: str) -> bool:
        return sid in self._ended

    async def end(self, sid: str, protocol: str, reason: str, stats: dict[str, int] | None = None) -> bool:
        """Record the end once (state, time, reason, counters), announce it and publish ``session_end``."""
        if sid in self._ended:
            return False
        self._ended.add(sid)
        now = time.time()
        values: dict[str, str | int | float] = {"state": "ended", "ended": now, "end_reason": reason}
        values.update({f"stat_{k}": v for k, v in (stats or {}).items()})
        await self._bus.set_session(sid, values)
        await self._bus.publish(
            SESSIONS, SessionAnnounce(sid=sid, state="ended", protocol=protocol, ts=now, reason=reason)
        )
        await self._bus.publish(EVENTS, Event(sid=sid, type="session_end", ts=now, protocol=protocol, text=reason))
        session_logger(log, sid).info("session ended: %s", reason)
        return True
