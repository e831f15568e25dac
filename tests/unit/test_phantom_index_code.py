"""The frame-index code: round trip, lossy coding, downscaling, and refusing damaged codes."""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from phantom.face import Phantom
from phantom.index_code import MAX_INDEX, embed_index, read_index
from phantom.spec import PatientSpec

pytestmark = pytest.mark.unit


def _noise_frame(seed: int, w: int = 640, h: int = 480) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("index", [0, 1, 2**19 + 12345, MAX_INDEX])
def test_round_trip(index: int) -> None:
    frame = _noise_frame(index % 7)
    embed_index(frame, index)
    assert read_index(frame) == index


def test_survives_jpeg_and_downscale_to_480x360() -> None:
    for index in (5, 777, 65_432):
        frame = _noise_frame(index)
        embed_index(frame, index)
        small = cv2.resize(frame, (480, 360), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 20])
        assert ok
        assert read_index(cv2.imdecode(buf, cv2.IMREAD_COLOR)) == index


@pytest.mark.parametrize("codec", ["libx264", "libvpx"])
def test_survives_low_bitrate_video_coding(codec: str) -> None:
    ph = Phantom(PatientSpec(seed=9, protocol="pfed5", severity=2, reps=1), 640, 480, 30)
    enc = av.CodecContext.create(codec, "w")
    enc.width, enc.height, enc.pix_fmt = 480, 360, "yuv420p"
    enc.time_base = Fraction(1, 30)
    enc.bit_rate = 300_000
    dec = av.CodecContext.create("h264" if codec == "libx264" else "vp8", "r")
    sent = list(range(0, 40))
    got: list[int | None] = []
    for n in sent:
        frame = av.VideoFrame.from_ndarray(ph.render(n), format="rgb24").reformat(480, 360, "yuv420p")
        frame.pts = n
        for packet in enc.encode(frame):
            got += [read_index(f.to_ndarray(format="rgb24")) for f in dec.decode(packet)]
    for packet in enc.encode(None):
        got += [read_index(f.to_ndarray(format="rgb24")) for f in dec.decode(packet)]
    got += [read_index(f.to_ndarray(format="rgb24")) for f in dec.decode(None)]
    assert got == sent


def test_frames_without_a_code_or_with_a_flipped_bit_read_as_none() -> None:
    frame = _noise_frame(1)
    assert read_index(frame) is None
    assert read_index(np.zeros((480, 640, 3), np.uint8)) is None
    embed_index(frame, 1234)
    h, w = frame.shape[:2]
    cell = w // 32
    y = int(h * 0.96)
    x = 10 * cell + cell // 2  # a payload cell
    frame[int(h * 0.93) :, 10 * cell + 1 : 11 * cell - 1] = 255 - frame[y, x]
    assert read_index(frame) is None


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        embed_index(_noise_frame(0), MAX_INDEX + 1)
    with pytest.raises(ValueError, match="outside"):
        embed_index(_noise_frame(0), -1)
    with pytest.raises(ValueError, match="too small"):
        read_index(np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        read_index(np.zeros((480, 640), np.uint8))
    with pytest.raises(TypeError):
        embed_index(_noise_frame(0), 1.5)  # type: ignore[arg-type]
