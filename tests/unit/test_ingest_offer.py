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


def test_fps_gate_cuts_only_real_excess() -> None:
    # 10 fps cap, 30 fps in for 1 s: about 10 kept (the first burst of 4 included)
    gate = FpsGate(10.0)
    admitted = [t for t in (i / 30 for i in range(30)) if gate.admit(t)]
    assert 12 <= len(admitted) <= 15 and gate.dropped == 30 - len(admitted)
    # a 30 fps camera under a 30 fps cap, its frames arriving with network jitter and in late bursts: none lost
    rng = np.random.default_rng(5)
    times = np.arange(3000) / 30 + rng.uniform(0, 0.03, 3000)  # up to 30 ms late, so gaps from 3 to 63 ms
    times[::50] += 0.06  # now and then a frame held up 60 ms, then released with the next ones
    gate = FpsGate(30.0)
    kept = sum(gate.admit(float(t)) for t in times)
    assert kept == 3000 and gate.dropped == 0
    # the old rule (a minimum gap of 0.85 / fps) lost frames of exactly this stream: the test can tell them apart
    last, lost = -1.0, 0
    for t in times:
        if t - last < 0.85 / 30:
            lost += 1
        else:
            last = float(t)
    assert lost > 30
    # a 60 fps camera under the 30 fps cap keeps about half, never more than the cap (3 % slack) over time
    gate = FpsGate(30.0)
    kept = sum(gate.admit(i / 60) for i in range(6000))
    assert 2990 <= kept <= 3100 and gate.dropped == 6000 - kept
