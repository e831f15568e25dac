"""Shaping decoded video frames for the bus: the fps cap, downscaling to the size limits, pixel encoding."""

from __future__ import annotations

import dataclasses

import av
import numpy as np

from common.framecodec import encode_frame


@dataclasses.dataclass(frozen=True)
class Shaped:
    width: int
    height: int
    data: bytes


@dataclasses.dataclass(frozen=True)
class FrameShaper:
    """Scales a frame to fit ``max_width`` x ``max_height`` (even sizes, aspect kept) and encodes it. Thread-safe."""

    max_width: int = 640
    encoding: str = "i420"
    jpeg_quality: int = 85
    max_height: int = 960

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        if width <= 0 or height <= 0:
            raise ValueError(f"bad frame size {width}x{height}")
        scale = min(1.0, self.max_width / width, self.max_height / height)
        if scale < 1.0:
            width, height = round(width * scale), round(height * scale)
        return max(2, width - width % 2), max(2, height - height % 2)

    def shape(self, frame: av.VideoFrame) -> Shaped:
        """Runs in a worker thread: swscale does the resize and colour conversion in one pass."""
        width, height = self.target_size(frame.width, frame.height)
        if self.encoding == "i420":
            out = frame.reformat(width=width, height=height, format="yuv420p")
            planes = out.to_ndarray()
            return Shaped(width, height, np.ascontiguousarray(planes).tobytes())
        rgb = np.asarray(frame.reformat(width=width, height=height, format="rgb24").to_ndarray(), dtype=np.uint8)
        if self.encoding == "rgb24":
            return Shaped(width, height, np.ascontiguousarray(rgb).tobytes())
        return Shaped(width, height, encode_frame(rgb, self.encoding, self.jpeg_quality))


class FpsGate:
    """Admits frames at no more than ``max_fps`` on average (by capture time) and counts the rest.

    A token bucket: credit accrues at ``max_fps`` x (1 + ``slack``) frames a second up to ``burst`` frames, and each
    admitted frame spends one. A camera at the cap whose frames arrive in uneven bursts (network jitter, a late
    decode) loses nothing; only frames beyond the rate are cut (a 60 fps camera under a 30 fps cap keeps every
    other frame). The small slack absorbs a camera clock a little faster than ours.
    """

    def __init__(self, max_fps: float, burst: float = 4.0, slack: float = 0.03) -> None:
        self._rate = max_fps * (1.0 + slack)
        self._burst = max(1.0, burst)
        self._credit = self._burst
        self._last: float | None = None
        self.dropped = 0

    def admit(self, capture_ts: float) -> bool:
        if self._last is not None:
            self._credit = min(self._burst, self._credit + max(0.0, capture_ts - self._last) * self._rate)
        self._last = capture_ts if self._last is None else max(self._last, capture_ts)
        if self._credit < 1.0:
            self.dropped += 1
            return False
        self._credit -= 1.0
        return True
