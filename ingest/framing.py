"""Shaping decoded video frames for the bus: the fps cap, downscaling to the width limit, pixel encoding."""

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
    """Scales a frame to at most ``max_width`` px wide (even sizes, aspect kept) and encodes it. Thread-safe."""

    max_width: int = 640
    encoding: str = "i420"
    jpeg_quality: int = 85

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        if width <= 0 or height <= 0:
            raise ValueError(f"bad frame size {width}x{height}")
        if width > self.max_width:
            height = round(height * self.max_width / width)
            width = self.max_width
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
    """Admits frames no faster than ``max_fps`` (by capture time), with slack for jitter; counts the rest."""

    def __init__(self, max_fps: float) -> None:
        self._min_gap = 0.85 / max_fps
        self._last: float | None = None
        self.dropped = 0

    def admit(self, capture_ts: float) -> bool:
        if self._last is not None and capture_ts - self._last < self._min_gap:
            self.dropped += 1
            return False
        self._last = capture_ts
        return True
