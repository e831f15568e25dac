"""The phantom as a live camera: an aiortc video track paced at real time.

Frame ``n`` of the stream is due ``n / fps`` seconds after the first ``recv()``; its pts is ``n * 90000 / fps`` on
the 90 kHz clock. When the consumer falls behind, the track skips ahead to the frame due now (real time wins; the
skips are counted in ``dropped``). The picture is the phantom frame ``n mod n_frames`` (``loop=True``) or the
track ends after the last frame (``loop=False``); its embedded index code names the phantom frame, so a receiver
can look up ``phantom.truth(read_index(decoded))``. Rendering runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time

from aiortc import VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from phantom.face import Phantom

log = logging.getLogger(__name__)
CLOCK_RATE = 90_000
TIME_BASE = fractions.Fraction(1, CLOCK_RATE)


class PhantomTrack(VideoStreamTrack):
    """A real-time video track that plays the phantom's whole protocol."""

    kind = "video"

    def __init__(self, phantom: Phantom, loop: bool = True) -> None:
        super().__init__()
        self.phantom = phantom
        self.loop = loop
        self.sent = 0
        self.dropped = 0
        self._next = 0
        self._t0: float | None = None

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        fps = self.phantom.fps
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        due = int((now - self._t0) * fps)
        if due > self._next:
            self.dropped += due - self._next
            self._next = due
        n = self._next
        if not self.loop and n >= self.phantom.n_frames:
            log.info("phantom track finished after %d frames", self.sent)
            self.stop()
            raise MediaStreamError
        wait = self._t0 + n / fps - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        rgb = await asyncio.to_thread(self.phantom.render, n % self.phantom.n_frames)
        frame = VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = round(n * CLOCK_RATE / fps)
        frame.time_base = TIME_BASE
        self._next = n + 1
        self.sent += 1
        return frame
