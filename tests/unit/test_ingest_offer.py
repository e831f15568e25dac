"""SDP offer checks and frame shaping: the pure parts of ingest."""

from __future__ import annotations

import av
import numpy as np
import pytest

from common.framecodec import decode_frame
from ingest.framing import FpsGate, FrameShaper
from ingest.sdp import OfferError, check_offer

pytestmark = pytest.mark.unit

GOOD = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"


def test_offer_checks() -> None:
    assert check_offer(GOOD, "offer", 4096) == GOOD
    cases = [
        (GOOD, "answer", "type 'offer'"),
        (None, "offer", "no SDP text"),
        ("  ", "offer", "no SDP text"),
        (GOOD + "a=x\r\n" * 2000, "offer", "limit is 4096"),
        ("hello", "offer", "start with 'v=0'"),
        ("v=0\r\nnot sdp\r\n", "offer", "malformed SDP line"),
        (GOOD.replace("m=video 9", "m=audio 9"), "offer", "no video"),
        (GOOD.replace("m=video 9", "m=video 0"), "offer", "disabled"),
    ]
    for sdp, kind, message in cases:
        with pytest.raises(OfferError, match=message):
            check_offer(sdp, kind, 4096)


@pytest.mark.parametrize("encoding", ["i420", "rgb24", "jpeg"])
def test_shaper_downscales_and_encodes(encoding: str) -> None:
    img = np.zeros((720, 1280, 3), np.uint8)
    img[:, :640] = (200, 30, 30)
    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
    shaped = FrameShaper(640, encoding).shape(frame)
    assert (shaped.width, shaped.height) == (640, 360)
    rgb = decode_frame(shaped.data, shaped.width, shaped.height, encoding)
    assert abs(int(rgb[180, 100, 0]) - 200) < 12 and int(rgb[180, 500, 0]) < 20
    small = FrameShaper(640, encoding).shape(
        av.VideoFrame.from_ndarray(np.zeros((241, 321, 3), np.uint8), format="rgb24")
    )
    assert (small.width, small.height) == (320, 240)


def test_fps_gate() -> None:
    gate = FpsGate(10.0)
    admitted = [t for t in (i / 30 for i in range(30)) if gate.admit(t)]
    assert 9 <= len(admitted) <= 11 and gate.dropped == 30 - len(admitted)
