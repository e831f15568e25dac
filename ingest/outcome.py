"""What became of a recorded file's frames: counted from the tracker's observations while the file is fed.

A file session used to end ``completed`` whether or not anything was tracked. :class:`ObsTally` follows
``obs:{sid}`` from the session's start (a plain tail, no group), counting observed frames and frames with a face;
after the last frame it waits (bounded) until the tracker has observed it. The session then ends ``completed``,
``no_face`` (observed, but no frame had a face) or ``not_tracked`` (no tracker took the frames in time), and its
stats say how many frames were published, observed and had a face.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from common.bus import Bus
from common.errors import BusUnavailable
from common.messages import Obs
from common.streams import OBS
from common.tasks import stop_tasks

NOT_TRACKED = "no tracker observed the frames in time: is the tracker running? (feqa up starts one)"
NO_FACE = "no face was found in any frame: film the face from the front, well lit"
_BLOCK_MS = 200


class ObsTally:
    """Counts a session's observations in the background (:meth:`start` / :meth:`finish`)."""

    def __init__(self, bus: Bus, sid: str) -> None:
        self._bus = bus
        self.sid = sid
        self.observed = 0
        self.faces = 0
        self.last_seq = -1
        self._task: asyncio.Task[None] | None = None
        self._seen = asyncio.Event()
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._follow())

    async def _follow(self) -> None:
        cursor = "0-0"
        while not self._stopping:
            try:
                batch = await self._bus.tail({(OBS, self.sid): cursor}, count=256, block_ms=_BLOCK_MS)
            except BusUnavailable:
                await asyncio.sleep(0.2)
                continue
            for delivery in batch:
                cursor = delivery.id
                obs = delivery.message
                if isinstance(obs, Obs):
                    self.observed += 1
                    self.faces += int(obs.face)
                    self.last_seq = max(self.last_seq, obs.seq)
            if batch:
                self._seen.set()

    async def finish(self, last_seq: int, wait_s: float) -> tuple[str, str]:
        """Wait (at most ``wait_s`` without progress) until frame ``last_seq`` was observed; return the ending
        (reason, error text): ``completed``, ``no_face`` or ``not_tracked``."""
        deadline = time.monotonic() + wait_s
        progress = self.observed
        while last_seq >= 0 and self.last_seq < last_seq:
            if self.observed != progress:  # still working through the file: wait on
                progress, deadline = self.observed, time.monotonic() + wait_s
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._seen.wait(), min(left, 0.25))
        await self.stop()
        if self.observed == 0:
            return "not_tracked", NOT_TRACKED
        if self.faces == 0:
            return "no_face", NO_FACE
        return "completed", ""

    async def stop(self) -> None:
        """End the follower. It is asked to stop, not cancelled: cancelling a blocked read can leave the shared
        connection pool waiting; the read returns within its block time anyway."""
        if self._task is None:
            return
        self._stopping = True
        await asyncio.wait({self._task}, timeout=_BLOCK_MS / 1000 + 2.0)
        # usually ended by then (only its outcome is retrieved); one still following after the wait is cancelled
        await stop_tasks([self._task], what="outcome follower")
        self._task = None

    def stats(self) -> dict[str, int]:
        return {"observed": self.observed, "faces": self.faces}
