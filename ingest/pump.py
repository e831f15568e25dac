"""The live frame path: newest frame wins. The receiver never waits for Redis; a frame not yet published when a
newer one arrives is replaced and counted as a drop. A frame the bus refuses (the session was ended elsewhere, e.g.
by a sweeper or another ingest) is counted and reported once through ``on_refused``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

import av

from common.bus import Bus
from common.logs import session_logger
from common.messages import Frame
from common.streams import FRAMES
from ingest.framing import FpsGate, FrameShaper

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PumpStats:
    received: int = 0
    published: int = 0
    dropped_fps: int = 0
    dropped_busy: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class IngestCounters:
    """One ingest process's frame figures across all its sessions, for its Health entries."""

    totals: PumpStats = dataclasses.field(default_factory=PumpStats)
    latencies_ms: collections.deque[float] = dataclasses.field(default_factory=lambda: collections.deque(maxlen=600))


class FramePump:
    """One session's frame publisher: :meth:`offer` from the receive loop, :meth:`run` as a task."""

    def __init__(
        self,
        bus: Bus,
        sid: str,
        shaper: FrameShaper,
        max_fps: float,
        on_first_frame: Callable[[int, int], Awaitable[None]] | None = None,
        on_refused: Callable[[], None] | None = None,
        counters: IngestCounters | None = None,
    ) -> None:
        self._bus = bus
        self.sid = sid
        self._shaper = shaper
        self._gate = FpsGate(max_fps)
        self._on_first = on_first_frame
        self._on_refused = on_refused
        self._slot: tuple[av.VideoFrame, float, float] | None = None
        self._ready = asyncio.Event()
        self._last_ts = 0.0
        self.next_seq = 0
        self.stats = PumpStats()
        self.counters = counters  # the process's figures across every session (health)
        self._log = session_logger(log, sid)

    def _count(self, name: str) -> None:
        for stats in (self.stats, self.counters.totals if self.counters else None):
            if stats is not None:
                setattr(stats, name, getattr(stats, name) + 1)

    @property
    def waiting(self) -> bool:
        """Whether a frame waits in the slot for the publisher."""
        return self._slot is not None

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest published frame (-1 before the first)."""
        return self.next_seq - 1

    def offer(self, frame: av.VideoFrame, capture_ts: float | None = None, arrival_ts: float | None = None) -> None:
        """Hand over a decoded frame (its capture time and arrival time, default now); never blocks."""
        arrival = time.time() if arrival_ts is None else arrival_ts
        ts = arrival if capture_ts is None else capture_ts
        self._count("received")
        if not self._gate.admit(ts):
            self._count("dropped_fps")
            return
        if self._slot is not None:
            self._count("dropped_busy")
        self._slot = (frame, ts, arrival)
        self._ready.set()

    async def run(self) -> None:
        """Publish until cancelled."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self._slot is None:
                continue
            frame, ts, arrival = self._slot
            self._slot = None
            await self.publish(frame, ts, arrival)

    async def publish(self, frame: av.VideoFrame, capture_ts: float, arrival_ts: float | None = None) -> int | None:
        """Shape (in a worker thread) and publish one frame now; return its seq (None: refused, session ended)."""
        shaped = await asyncio.to_thread(self._shaper.shape, frame)
        ts = max(capture_ts, self._last_ts + 1e-6)  # capture times strictly rise even if the clock steps back
        self._last_ts = ts
        seq = self.next_seq
        message = Frame(
            sid=self.sid,
            seq=seq,
            capture_ts=ts,
            width=shaped.width,
            height=shaped.height,
            encoding=self._shaper.encoding,
            data=shaped.data,
            source_index=-1,
            arrival_ts=time.time() if arrival_ts is None else arrival_ts,
        )
        if await self._bus.publish(FRAMES, message) is None:
            self._count("refused")
            if self.stats.refused == 1:
                self._log.warning("frames refused: the session was ended elsewhere")
                if self._on_refused is not None:
                    self._on_refused()
            return None
        self.next_seq += 1
        self._count("published")
        if self.counters is not None:  # capture -> in Redis, for the health gauges
            self.counters.latencies_ms.append((time.time() - ts) * 1000)
        if seq == 0:
            self._log.info("first frame %dx%d (%s)", shaped.width, shaped.height, self._shaper.encoding)
            if self._on_first is not None:
                await self._on_first(shaped.width, shaped.height)
        return seq
