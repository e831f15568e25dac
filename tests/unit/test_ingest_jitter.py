"""The marker-aware video jitter buffer (ingest.jitter): a frame leaves at its marked last packet, not when the next
frame starts; gaps, reordering and unmarked streams keep aiortc's behaviour; the swap into a real receiver takes."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from ingest import jitter
from ingest.jitter import MarkerJitterBuffer

pytestmark = pytest.mark.unit


def _packet(seq: int, ts: int, marker: bool, data: bytes) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq % 65536, timestamp=ts, marker=int(marker))
    p._data = data  # type: ignore[attr-defined]  # what aiortc's depayloader sets
    return p


def _frames(n: int, per_frame: int, first_seq: int = 100, marked: bool = True) -> list[list[RtpPacket]]:
    out = []
    seq = first_seq
    for f in range(n):
        ts = 9000 * f
        packets = []
        for k in range(per_frame):
            packets.append(_packet(seq, ts, marked and k == per_frame - 1, bytes([f, k])))
            seq += 1
        out.append(packets)
    return out


def _feed(buf: JitterBuffer, packets: list[RtpPacket]) -> list[tuple[int, bytes] | None]:
    out: list[tuple[int, bytes] | None] = []
    for p in packets:
        _, frame = buf.add(p)
        out.append(None if frame is None else (frame.timestamp, frame.data))
    return out


def test_a_frame_leaves_at_its_marked_last_packet() -> None:
    frames = _frames(4, 3)
    ours, theirs = MarkerJitterBuffer(), JitterBuffer(capacity=512, is_video=True)
    for f, packets in enumerate(frames):
        got = _feed(ours, packets)
        assert got[:-1] == [None, None]
        assert got[-1] == (9000 * f, b"".join(bytes([f, k]) for k in range(3)))
        # aiortc's own buffer releases the previous frame only now, at this frame's first packet
        previous = None if f == 0 else (9000 * (f - 1), b"".join(bytes([f - 1, k]) for k in range(3)))
        assert _feed(theirs, packets)[0] == previous
    assert ours.early == 4


def test_one_packet_frames_and_sequence_wrap() -> None:
    buf = MarkerJitterBuffer()
    got = _feed(buf, [p for f in _frames(6, 1, first_seq=65533) for p in f])
    assert got == [(9000 * f, bytes([f, 0])) for f in range(6)]


def test_a_gap_holds_the_frame_until_the_retransmission_fills_it() -> None:
    buf = MarkerJitterBuffer()
    f0, f1 = _frames(2, 3)
    lost = f0[1]
    assert _feed(buf, [f0[0], f0[2]]) == [None, None]  # the middle packet is missing: not complete
    assert _feed(buf, [lost]) == [(0, bytes([0, 0, 0, 1, 0, 2]))]  # the retransmission completes it
    assert _feed(buf, f1)[-1] == (9000, bytes([1, 0, 1, 1, 1, 2]))


def test_reordered_packets_still_make_whole_frames() -> None:
    buf = MarkerJitterBuffer()
    f0 = _frames(1, 4)[0]
    assert _feed(buf, [f0[0], f0[3], f0[2], f0[1]]) == [None, None, None, (0, bytes([0, 0, 0, 1, 0, 2, 0, 3]))]


def test_an_unmarked_stream_keeps_aiortcs_rule() -> None:
    buf = MarkerJitterBuffer()
    f0, f1 = _frames(2, 2, marked=False)
    assert _feed(buf, f0) == [None, None]
    assert _feed(buf, f1)[0] == (0, bytes([0, 0, 0, 1]))  # released when the next frame starts, as before
    assert buf.early == 0


def test_install_swaps_the_buffer_of_a_real_receiver() -> None:
    async def main() -> tuple[bool, object, bool]:
        pc = RTCPeerConnection()
        try:
            receiver = pc.addTransceiver("video", direction="recvonly").receiver
            ok = jitter.install(receiver)
            buf = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
            again = jitter.install(receiver)  # idempotent
            return ok and again, buf, buf is getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
        finally:
            await pc.close()

    ok, buf, same = asyncio.run(main())
    assert ok and same
    assert isinstance(buf, MarkerJitterBuffer)
    assert buf.capacity == 512


def test_install_on_something_else_keeps_it_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    class NotAReceiver:
        pass

    thing = NotAReceiver()
    assert jitter.install(thing) is False
    assert not hasattr(thing, "_RTCRtpReceiver__jitter_buffer")
    assert "jitter delay" in caplog.text
