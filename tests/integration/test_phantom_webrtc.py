"""The phantom track through a real aiortc loopback call: the frame index survives VP8 and H264."""

from __future__ import annotations

import asyncio

import aioice.ice
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from phantom.face import Phantom
from phantom.index_code import read_index
from phantom.spec import PatientSpec
from phantom.track import PhantomTrack

pytestmark = pytest.mark.integration


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep media on 127.0.0.1: aioice skips loopback when gathering, so offer exactly it (the one patch)."""

    def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    monkeypatch.setattr(aioice.ice, "get_host_addresses", loopback)


async def _call(
    phantom: Phantom, mime: str, seconds: float
) -> tuple[list[tuple[int | None, np.ndarray]], str, PhantomTrack]:
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = PhantomTrack(phantom)
    received: asyncio.Queue[MediaStreamTrack] = asyncio.Queue(maxsize=1)
    receiver_pc.on("track", lambda t: received.put_nowait(t))
    transceiver = sender_pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == mime])
    try:
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        remote = await asyncio.wait_for(received.get(), 5)
        frames: list[tuple[int | None, np.ndarray]] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            frame = await asyncio.wait_for(remote.recv(), 5)
            rgb = frame.to_ndarray(format="rgb24")
            frames.append((read_index(rgb), rgb))
        return frames, receiver_pc.remoteDescription.sdp, track
    finally:
        await sender_pc.close()
        await receiver_pc.close()


@pytest.mark.parametrize("mime", ["video/VP8", "video/H264"])
async def test_frame_index_survives_webrtc_coding(loopback_only: None, mime: str) -> None:
    phantom = Phantom(PatientSpec(seed=11, protocol="pfed5", severity=2, reps=1), 640, 480, 30)
    frames, sdp, track = await _call(phantom, mime, seconds=2.0)
    candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate")]
    assert candidates and all(" 127.0.0.1 " in c for c in candidates)
    assert mime.split("/")[1] in sdp
    indices = [i for i, _ in frames]
    readable = [i for i in indices if i is not None]
    assert len(frames) >= 30
    assert len(readable) >= 0.9 * len(frames), indices
    assert readable == sorted(readable) and len(set(readable)) == len(readable)
    assert max(readable) < track.sent + track.dropped  # the phantom frame number of the last frame sent
    # the index names the picture: a decoded frame matches the phantom frame it claims to be
    for index, rgb in frames[-5:]:
        if index is not None:
            diff = np.abs(rgb.astype(np.int16) - phantom.render(index).astype(np.int16)).mean()
            other = np.abs(
                rgb.astype(np.int16) - phantom.render((index + 15) % phantom.n_frames).astype(np.int16)
            ).mean()
            assert diff < 6.0 and diff < other, (index, diff, other)


async def test_track_paces_at_real_time_and_ends_without_loop() -> None:
    phantom = Phantom(PatientSpec(seed=1, protocol="pfed5", severity=0, reps=1, tasks=("rest",)), 128, 96, 50)
    track = PhantomTrack(phantom, loop=False)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    pts: list[int] = []
    while len(pts) < phantom.n_frames:
        frame = await track.recv()
        pts.append(frame.pts)
        assert read_index(frame.to_ndarray(format="rgb24")) == len(pts) - 1
    with pytest.raises(MediaStreamError):  # after the last frame
        await track.recv()
    elapsed = loop.time() - t0
    assert len(pts) == phantom.n_frames
    assert pts == [round(n * 90_000 / 50) for n in range(phantom.n_frames)]
    assert elapsed == pytest.approx((phantom.n_frames - 1) / 50, abs=0.3)
