"""The marker-aware jitter buffer over a real aiortc loopback call (VP8): at 2 fps each frame is decoded within a
fraction of its frame period, where aiortc's own buffer holds it until the next frame starts (500 ms)."""

from __future__ import annotations

import asyncio
import fractions
import statistics
import time

import aioice.ice
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack
from av import VideoFrame

from ingest import jitter

pytestmark = pytest.mark.integration
FPS = 2.0
FRAMES = 7


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    monkeypatch.setattr(aioice.ice, "get_host_addresses", loopback)


class _SlowTrack(MediaStreamTrack):
    """A 2 fps camera that notes when it handed each frame (by its pts) to the encoder."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[int, float] = {}
        self._n = 0
        self._t0: float | None = None

    async def recv(self) -> VideoFrame:
        if self._t0 is None:
            self._t0 = time.monotonic()
        due = self._t0 + self._n / FPS
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        rng = np.random.default_rng(self._n)
        frame = VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), format="rgb24")
        frame.pts = self._n * 45_000
        frame.time_base = fractions.Fraction(1, 90_000)
        self.sent[frame.pts] = time.monotonic()
        self._n += 1
        return frame


async def _delays(install: bool) -> list[float]:
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = _SlowTrack()
    received: asyncio.Queue[MediaStreamTrack] = asyncio.Queue(maxsize=1)
    receiver_pc.on("track", lambda t: received.put_nowait(t))
    transceiver = sender_pc.addTransceiver(track, direction="sendonly")
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
    transceiver.setCodecPreferences(vp8)
    delays: list[float] = []
    try:
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        if install:
            for t in receiver_pc.getTransceivers():
                assert jitter.install(t.receiver)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        remote = await asyncio.wait_for(received.get(), 10)
        for _ in range(FRAMES):
            frame = await asyncio.wait_for(remote.recv(), 10)
            now = time.monotonic()
            sent = track.sent.get(int(frame.pts or 0))
            if sent is not None:
                delays.append(now - sent)
    finally:
        await sender_pc.close()
        await receiver_pc.close()
    return delays[1:]  # the first frame pays for the connection


@pytest.mark.usefixtures("loopback_only")
async def test_frames_decode_at_their_last_packet_not_a_frame_later() -> None:
    ours = await _delays(install=True)
    theirs = await _delays(install=False)
    assert len(ours) >= FRAMES - 2 and len(theirs) >= FRAMES - 2
    # aiortc's buffer: about one frame period (0.5 s); ours: encode + loopback + decode, well under half of it
    assert statistics.median(theirs) > 0.4
    assert statistics.median(ours) < 0.2, ours
