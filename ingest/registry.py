"""The app's registry of live work: one peer per session and background jobs (file ingests). Closed on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from common.errors import RetryableError
from common.tasks import stop_tasks
from ingest.peer import IngestPeer

log = logging.getLogger(__name__)


class CapacityError(RetryableError):
    """The service runs as many sessions as it is configured for."""


class PeerRegistry:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._peers: dict[str, IngestPeer] = {}
        self._jobs: dict[str, asyncio.Task[Any]] = {}

    def __len__(self) -> int:
        return len(self._peers) + len(self._jobs)

    def check_capacity(self) -> None:
        if len(self) >= self._capacity:
            raise CapacityError(f"ingest is at its limit of {self._capacity} concurrent sessions; try again later")

    def add(self, peer: IngestPeer) -> None:
        if peer.sid in self._peers:
            raise ValueError(f"session {peer.sid} already has a peer")
        self.check_capacity()
        self._peers[peer.sid] = peer

    def replace(self, old: IngestPeer, new: IngestPeer) -> None:
        """A resumed connection takes its session's place (no capacity needed: the session already had one)."""
        if self._peers.get(old.sid) is not old or new.sid != old.sid:
            raise ValueError(f"session {old.sid} is not served by that peer")
        self._peers[old.sid] = new

    def get(self, sid: str) -> IngestPeer | None:
        return self._peers.get(sid)

    async def remove(self, peer: IngestPeer) -> None:
        if self._peers.get(peer.sid) is peer:
            del self._peers[peer.sid]

    def spawn_job(self, sid: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background job for a session (a file ingest); it leaves the registry when done."""
        self.check_capacity()
        task = asyncio.ensure_future(coro)
        task.set_name(f"ingest-job-{sid}")
        self._jobs[sid] = task
        task.add_done_callback(lambda _t: self._jobs.pop(sid, None))
        return task

    def job(self, sid: str) -> asyncio.Task[Any] | None:
        return self._jobs.get(sid)

    async def close_all(self, reason: str = "shutdown") -> None:
        peers = list(self._peers.values())
        jobs = list(self._jobs.values())
        await asyncio.gather(*(p.close(reason) for p in peers), stop_tasks(jobs, what="session job"),
                             return_exceptions=True)  # fmt: skip
        self._peers.clear()
        self._jobs.clear()
        if peers or jobs:
            log.info("closed %d peers and %d jobs (%s)", len(peers), len(jobs), reason)
