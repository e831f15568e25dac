"""A video jitter buffer that hands a frame to the decoder as soon as its last packet is in.

aiortc's own video buffer (``aiortc.jitterbuffer.JitterBuffer``) knows a frame is complete only when the first
packet of the *next* frame arrives (a new RTP timestamp), so every frame waits one frame period before decoding:
100 ms at the demo's 10 fps, 33 ms at 30 fps, measured as almost all of the capture -> ingest transport time.
Senders mark the last packet of each video frame with the RTP marker bit (RFC 3550; aiortc's sender and browsers
do): :class:`MarkerJitterBuffer` emits the frame at the buffer's origin as soon as its packets up to a marked one
are all present and share one timestamp (checked after every packet, so a retransmission that fills a gap releases
the frame too). Anything else (a gap, no marker) falls back to aiortc's rule unchanged, so loss handling (NACK,
PLI, smart removal) stays aiortc's. One packet releases at most one frame (aiortc's interface): after a loss, a
stream of one-packet frames can stay one frame behind until a frame of several packets (a key frame) comes.

:func:`install` swaps the buffer into a video receiver before any packet arrives. It reaches into the receiver's
private attribute; aiortc's version is pinned by the project and a test checks the swap took, and where the
attribute is missing the receiver keeps aiortc's buffer (logged), losing only the speed-up.
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

log = logging.getLogger(__name__)

_ATTR = "_RTCRtpReceiver__jitter_buffer"  # aiortc's name-mangled private field
CAPACITY = 512  # aiortc's video capacity (packets)


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer plus early release of a frame whose marked last packet has arrived."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        super().__init__(capacity=capacity, is_video=True)
        self.early = 0  # frames released at their marker, before the next frame began

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli, frame = super().add(packet)
        if frame is None:  # this packet may have completed the frame at the origin (its tail, or a gap filled)
            frame = self._complete_at_origin()
            if frame is not None:
                self.early += 1
        return pli, frame

    def _complete_at_origin(self) -> JitterFrame | None:
        """The frame at the origin if its packets are all here: contiguous, one timestamp, the last one marked."""
        origin = self._origin
        if origin is None:
            return None
        first = self._packets[origin % self.capacity]
        if first is None:
            return None
        parts: list[bytes] = []
        for count in range(self.capacity):
            packet = self._packets[(origin + count) % self.capacity]
            if packet is None or packet.timestamp != first.timestamp:
                return None
            parts.append(getattr(packet, "_data", b""))
            if packet.marker:
                self.remove(count + 1)
                return JitterFrame(data=b"".join(parts), timestamp=first.timestamp)
        return None


def install(receiver: Any) -> bool:
    """Give a video ``RTCRtpReceiver`` the marker-aware buffer; False (and a warning) if aiortc changed."""
    current = getattr(receiver, _ATTR, None)
    if not isinstance(current, JitterBuffer):
        log.warning("aiortc's receiver has no %s: frames keep aiortc's one-frame jitter delay", _ATTR)
        return False
    if not isinstance(current, MarkerJitterBuffer):
        setattr(receiver, _ATTR, MarkerJitterBuffer(current.capacity))
    return True
