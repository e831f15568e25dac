"""Session lifecycle as the ingest drives it: create from a spec, start under this process's ingest lease, task
events, end. The hash itself is common.session_store's (always a SessionInfo).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from typing import Any

from common.backlog import group_backlog
from common.bus import Bus
from common.liveness import IngestLiveness
from common.logs import session_logger
from common.messages import Consent, Event, SessionInfo
from common.session_store import Retention, SessionStore
from common.streams import EVENTS, FRAMES

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SessionSpec:
    """What a clinician (or the CLI) asks for when a session is created."""

    patient_id: str
    protocol: str
    consent: Consent
    fps: float
    source: str = "webrtc"  # "webrtc" | "file"
    phantom: str = ""  # phantom.spec.PatientSpec JSON for synthetic patients


def new_sid() -> str:
    """A fresh session id (no characters that Redis keys or hash tags reject)."""
    return "s" + secrets.token_hex(8)


class IngestSessions:
    """Creates, starts and ends the sessions this ingest process serves (holding their ingest leases)."""

    def __init__(
        self,
        bus: Bus,
        retention: Retention,
        liveness: IngestLiveness,
        drain_s: float = 2.0,
        unstarted_s: float | None = None,
    ) -> None:
        self.bus = bus
        self.store = SessionStore(bus, retention)
        self.liveness = liveness
        self.drain_s = drain_s
        self.unstarted_s = unstarted_s

    async def create(self, spec: SessionSpec, sid: str | None = None) -> str:
        """Write the session; one nobody starts expires after ``unstarted_s`` (the join-link lifetime)."""
        sid = sid or new_sid()
        info = SessionInfo(sid=sid, patient_id=spec.patient_id, protocol=spec.protocol, consent=spec.consent,
                           state="created", source=spec.source, fps=spec.fps, created_ts=time.time(),
                           phantom=spec.phantom)  # fmt: skip
        await self.store.create(info, expire_s=self.unstarted_s)
        return sid

    async def start(self, sid: str, protocol: str) -> None:
        """Hold the session's ingest lease, then make it live (see common.liveness for the order)."""
        await self.liveness.claim(sid)
        try:
            await self.store.start(sid, protocol)
        except BaseException:
            await self.liveness.release(sid)
            raise

    async def update(self, sid: str, **changes: Any) -> bool:
        return await self.store.update(sid, **changes)

    async def event(self, sid: str, protocol: str, type_: str, *, task: str = "", rep: int = 0, seq: int = -1) -> Event:
        """Publish a session event (task_start, task_end, marker) to ``events:{sid}``."""
        event = Event(sid=sid, type=type_, ts=time.time(), protocol=protocol, task=task, rep=rep, seq=seq)
        await self.bus.publish(EVENTS, event)
        return event

    async def end(self, sid: str, reason: str, stats: dict[str, int] | None = None) -> bool:
        """End the session (first reason wins, frames and crops deleted) and give its ingest lease back.

        The end first waits (at most ``drain_s``) until the tracker has taken every published frame, so the last
        frames of the last task are observed before the frames are deleted. A session whose hash is gone (Redis
        lost its state) is announced ended with reason ``state_lost`` (common.session_store)."""
        try:
            await self._drain(sid)
            if await self.store.end(sid, reason, stats):
                return True
            if await self.store.get(sid) is None:  # its state is lost (Redis restarted): say so, do not resume
                await self.store.announce_lost(sid)
            return False
        finally:
            await self.liveness.release(sid)

    async def _drain(self, sid: str) -> None:
        deadline = time.monotonic() + self.drain_s
        while time.monotonic() < deadline:
            backlog = await group_backlog(self.bus, FRAMES, sid, limit=FRAMES.maxlen + 1)
            if not backlog:  # None (nobody reads frames) or 0 (all taken)
                return
            await asyncio.sleep(0.01)
        session_logger(log, sid).warning("ending with frames the tracker did not take within %.1f s", self.drain_s)
