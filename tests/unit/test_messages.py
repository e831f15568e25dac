"""Every wire message round-trips and refuses a wrong kind, an unknown schema version or damaged fields."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from common.arrays import decode_array, encode_array
from common.errors import DecodeError, SchemaVersionError
from common.messages import (
    ALL_MESSAGES,
    BY_KIND,
    Crop,
    DeadLetter,
    Event,
    Frame,
    Health,
    Message,
    Obs,
    Score,
    SessionAnnounce,
    Window,
)

pytestmark = pytest.mark.unit

rng = np.random.default_rng(7)

SAMPLES: list[Message] = [
    SessionAnnounce(sid="s1", state="started", protocol="pfed5", ts=1.25, reason=""),
    Frame(sid="s1", seq=3, capture_ts=10.5, width=4, height=2, encoding="rgb24", data=bytes(range(24)), source_index=9),
    Obs(
        sid="s1",
        seq=3,
        capture_ts=10.5,
        frame_w=640,
        frame_h=480,
        face=True,
        reason="",
        det_score=0.93,
        box=np.array([1.5, 2.5, 100.0, 120.0], np.float32),
        landmarks=rng.random((106, 2), dtype=np.float32) * 640,
        landmarks_crop=rng.random((106, 2), dtype=np.float32) * 256,
        pose=np.array([1.0, -2.0, 3.5], np.float32),
        colours=rng.integers(0, 255, (106, 3), dtype=np.uint8),
        quality={"brightness": 0.5, "blur": 120.0},
    ),
    Obs(sid="s1", seq=4, capture_ts=10.6, frame_w=640, frame_h=480, face=False, reason="no_face"),
    Crop(
        sid="s1",
        seq=3,
        capture_ts=10.5,
        image=rng.integers(0, 255, (224, 224, 3), dtype=np.uint8),
        box=np.array([0, 0, 10, 10], np.float32),
    ),
    Window(
        sid="s1",
        protocol="pfed5",
        task="smile",
        rep=1,
        reason="hop",
        first_seq=0,
        last_seq=64,
        task_start_seq=0,
        created_ts=11.0,
        landmarker="mediapipe-facemesh/t1",
        quality={"face_fraction": 1.0},
        failed=("turned",),
    ),
    Event(sid="s1", type="task_start", ts=2.0, protocol="pfed5", task="smile", rep=1, text="Smile", seq=5),
    Score(
        sid="s1",
        ts=12.0,
        kind="window",
        protocol="pfed5",
        task="smile",
        rep=1,
        first_seq=0,
        last_seq=64,
        capture_ts=11.5,
        score=1.75,
        raw=2.1,
        scale="mds-updrs-3.2",
        scale_min=0.0,
        scale_max=4.0,
        model="trampformer:pfed5/smile",
        version="1",
        kinematics={"mouth_rom": 0.2},
        quality={"face_ratio": 1.0},
    ),
    Score(
        sid="s1",
        ts=12.0,
        kind="task",
        protocol="pfed5",
        task="smile",
        rep=2,
        first_seq=0,
        last_seq=64,
        capture_ts=11.5,
        score=None,
        raw=None,
        scale="mds-updrs-3.2",
        scale_min=0.0,
        scale_max=4.0,
        model="",
        version="",
        withheld="quality:turned",
    ),
    Health(
        service="tracker", instance="h-1", ts=3.0, started_ts=1.0, counters={"frames": 10.0}, gauges={"lag_ms": 3.5}
    ),
    DeadLetter(stream="x", entry_id="1-0", error="bad", consumer="g/c", ts=1.0, original=b"\x00\x01"),
]


def _equal(a: Message, b: Message) -> bool:
    for f in dataclasses.fields(a):  # type: ignore[arg-type]
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
                return False
            if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


def test_every_message_kind_has_a_sample() -> None:
    assert {type(m) for m in SAMPLES} == set(ALL_MESSAGES)
    assert set(BY_KIND) == {m.KIND for m in ALL_MESSAGES}


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: Message) -> None:
    fields = msg.encode()
    assert all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in fields.items())
    back = type(msg).decode(fields)
    assert _equal(msg, back)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_wrong_schema_version_is_refused(msg: Message) -> None:
    fields = msg.encode()
    fields[b"v"] = str(msg.SCHEMA_VERSION + 1).encode()
    with pytest.raises(SchemaVersionError, match="schema version"):
        type(msg).decode(fields)


def test_arrays_are_binary_not_json() -> None:
    obs = SAMPLES[2]
    fields = obs.encode()
    assert b"a:landmarks" in fields
    assert b"landmarks" not in fields[b"m"]
    assert len(fields[b"a:landmarks"]) == 3 + 2 + 8 + 106 * 2 * 4


def test_wrong_kind_missing_field_truncated_array() -> None:
    obs = SAMPLES[2]
    with pytest.raises(DecodeError, match="expected a 'frame'"):
        Frame.decode(obs.encode())
    bad_magic = obs.encode() | {b"a:box": b"XYZ\x08\x01\x04\x00\x00\x00"}
    with pytest.raises(DecodeError, match="bad magic"):
        Obs.decode(bad_magic)
    no_meta = obs.encode()
    del no_meta[b"m"]
    with pytest.raises(DecodeError, match="no metadata"):
        Obs.decode(no_meta)
    truncated = obs.encode()
    truncated[b"a:landmarks"] = truncated[b"a:landmarks"][:-3]
    with pytest.raises(DecodeError, match="payload"):
        Obs.decode(truncated)
    meta_missing = SAMPLES[5].encode()
    meta_missing[b"m"] = b'{"sid": "s1"}'
    with pytest.raises(DecodeError, match="lacks field"):
        Window.decode(meta_missing)
    crop_missing = SAMPLES[4].encode()
    del crop_missing[b"a:image"]
    with pytest.raises(DecodeError, match="lacks field 'image'"):
        Crop.decode(crop_missing)


def test_optional_arrays_absent_decode_as_none() -> None:
    back = Obs.decode(SAMPLES[3].encode())
    assert back.landmarks is None and back.box is None and back.reason == "no_face"


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "float16", "float32", "float64", "bool"])
def test_array_codec_dtypes(dtype: str) -> None:
    arr = (rng.random((3, 5, 2)) * 100).astype(dtype)
    back = decode_array(encode_array(arr))
    assert back.dtype == arr.dtype and np.array_equal(back, arr)


def test_array_codec_rejects_garbage() -> None:
    with pytest.raises(DecodeError):
        decode_array(b"hello world")
    with pytest.raises(ValueError, match="cannot be encoded"):
        encode_array(np.array(["a"]))


def test_dead_letter_packs_original_fields() -> None:
    original = {b"k": b"obs", b"v": b"9", b"m": b"{}", b"a:x": b"\x00" * 7}
    assert DeadLetter.unpack_fields(DeadLetter.pack_fields(original)) == original
