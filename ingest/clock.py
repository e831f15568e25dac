"""A live frame's capture time, from the sender's RTP clock, on this machine's wall clock.

The sender stamps each frame with an RTP timestamp when it captures it (90 kHz for video); aiortc hands decoded
frames over with ``pts`` = that timestamp counted from the stream's first one. So the frames' spacing is the
sender's, however the network or the jitter buffer bunched their arrival. What remains is where RTP time zero lies
on our clock, ``base``: every frame that arrives, and every RTCP sender report (which names an RTP timestamp the
sender had already reached when it sent the report), gives an upper bound ``arrival - rtp / rate`` on it, since
nothing arrives before it was captured. ``base`` is the smallest bound seen: the sender's wall clock never enters,
so a sender whose clock is off by an hour gets the same capture times as one whose clock is right, and a frame
delayed in transit keeps the time it was captured at.

``capture = base + pts / rate``. A lower bound found later (a faster packet) is approached by slewing, at most
``slew`` of each frame's spacing per frame, never stepped, so capture times keep rising and speeds computed from
them stay sane. The sender's own clock offset (arrival minus the report's NTP time: offset plus one-way delay) is
kept for health, not for the capture time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc.rtp import RtcpSrPacket

log = logging.getLogger(__name__)

RTP_WRAP = 1 << 32
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)


class SenderClock:
    """Capture times for one received video stream."""

    def __init__(self, rate: int = 90_000, slew: float = 0.25) -> None:
        self.rate = rate
        self.slew = slew
        self.base: float | None = None  # wall time of RTP time zero, as used now
        self.target: float | None = None  # the tightest bound seen
        self.reports = 0
        self.sender_offset_s: float | None = None  # arrival - sender NTP time of the latest report
        self._last_pts: int | None = None

    def capture_time(self, pts: int | None, arrival: float) -> float:
        """The capture time of a frame with RTP-derived ``pts`` that arrived at ``arrival`` (None: arrival)."""
        if pts is None:
            return arrival
        rel = pts / self.rate
        self._bound(arrival - rel)
        if self.base is None or self.target is None:  # pragma: no cover - _bound set both
            return arrival
        if self.base > self.target:
            gap = rel - self._last_pts / self.rate if self._last_pts is not None else 0.0
            self.base = max(self.target, self.base - self.slew * max(gap, 0.0))
        self._last_pts = pts if self._last_pts is None else max(self._last_pts, pts)
        return self.base + rel

    def on_sender_report(self, rtp_timestamp: int, ntp_timestamp: int, arrival: float, origin: int | None) -> None:
        """An RTCP sender report (its 32-bit RTP timestamp and 64-bit NTP time); ``origin`` is the RTP timestamp
        the receiver counts ``pts`` from (None before the first frame: the report is only counted)."""
        self.reports += 1
        self.sender_offset_s = arrival - (ntp_timestamp / RTP_WRAP - NTP_EPOCH_OFFSET)
        if origin is None or self._last_pts is None:
            return
        rel = (rtp_timestamp - origin) % RTP_WRAP
        rel += round((self._last_pts - rel) / RTP_WRAP) * RTP_WRAP  # the wrap nearest the frames seen
        self._bound(arrival - rel / self.rate)

    def _bound(self, candidate: float) -> None:
        if self.target is None or candidate < self.target:
            self.target = candidate
        if self.base is None:
            self.base = candidate


def watch_sender_reports(receiver: Any, clock: SenderClock, now: Callable[[], float]) -> bool:
    """Feed an aiortc ``RTCRtpReceiver``'s RTCP sender reports to ``clock``; False when this aiortc version does
    not let us (capture times then rest on frame arrivals alone, still bounded by the RTP spacing)."""
    handle: Callable[[Any], Awaitable[None]] | None = getattr(receiver, "_handle_rtcp_packet", None)
    mapper = getattr(receiver, "_RTCRtpReceiver__timestamp_mapper", None)
    if handle is None or mapper is None or not hasattr(mapper, "_origin"):
        log.warning("aiortc's receiver has changed: RTCP sender reports are not used for capture times")
        return False

    async def spy(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            info = packet.sender_info
            clock.on_sender_report(info.rtp_timestamp, info.ntp_timestamp, now(), getattr(mapper, "_origin", None))
        await handle(packet)

    receiver._handle_rtcp_packet = spy
    return True
