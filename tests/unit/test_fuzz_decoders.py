"""Fuzzing of every stream decoder (hypothesis): each Message kind, SessionInfo, the dead-letter packing and the array
codec. Whatever the input, a decoder returns a message whose every field is what its type says, or raises
DecodeError (which the bus turns into a dead-letter entry); nothing else escapes, and nothing takes long.
``pytest --long -m fuzz`` gives each target 10,000 inputs."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.arrays import decode_array, encode_array
from common.errors import DecodeError
from common.messages import ALL_MESSAGES, Consent, DeadLetter, Message, SessionInfo
from tests.fuzz_kit import BOMBS, damaged, huge_array_headers, junk_fields, message_strategy, well_typed

pytestmark = [pytest.mark.unit, pytest.mark.fuzz]

KINDS = {cls.KIND: cls for cls in ALL_MESSAGES}
SLOW_S = 2.0  # CPU seconds no single decode may take (CPU time, so a loaded machine does not make it flaky)


def decode_or_refuse(cls: type[Message], fields: Mapping[bytes, bytes]) -> Message | None:
    t0 = time.process_time()
    try:
        msg = cls.decode(fields)
    except DecodeError:
        msg = None
    assert time.process_time() - t0 < SLOW_S, "a decode took too long"
    if msg is not None:
        assert well_typed(msg) == [], f"{cls.__name__} decoded with ill-typed fields {well_typed(msg)}: {msg!r}"
    return msg


def same(a: Message, b: Message) -> bool:
    for name in a.__dataclass_fields__:  # type: ignore[attr-defined]
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            if not (isinstance(y, np.ndarray) and x.dtype == y.dtype and np.array_equal(x, y)):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_valid_messages_round_trip(kind: str) -> None:
    cls = KINDS[kind]

    @given(message_strategy(cls))
    def run(msg: Message) -> None:
        assert well_typed(msg) == []
        back = decode_or_refuse(cls, msg.encode())
        assert back is not None and same(back, msg)

    run()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_damaged_messages_decode_well_typed_or_are_refused(kind: str) -> None:
    cls = KINDS[kind]

    @given(damaged(message_strategy(cls)))
    def run(fields: dict[bytes, bytes]) -> None:
        decode_or_refuse(cls, fields)

    run()


@given(junk_fields, st.sampled_from(sorted(KINDS)))
def test_junk_is_refused(fields: dict[bytes, bytes], kind: str) -> None:
    cls = KINDS[kind]
    fields = {**fields, b"k": kind.encode(), b"v": str(cls.SCHEMA_VERSION).encode()} if len(fields) % 2 else fields
    decode_or_refuse(cls, fields)


@pytest.mark.parametrize("bomb", BOMBS, ids=lambda b: repr(b[:12]))
def test_json_bombs_are_refused_quickly(bomb: bytes) -> None:
    for cls in ALL_MESSAGES:
        decode_or_refuse(cls, {b"k": cls.KIND.encode(), b"v": str(cls.SCHEMA_VERSION).encode(), b"m": bomb})


def test_array_headers_that_overflow_are_refused_without_allocating() -> None:
    for header in huge_array_headers():
        for tail in (b"", b"\x00" * 8, b"\x00" * 64):
            with pytest.raises(DecodeError):
                decode_array(header + tail)


@given(st.binary(max_size=80))
def test_array_decoder(blob: bytes) -> None:
    try:
        arr = decode_array(blob)
    except DecodeError:
        return
    assert encode_array(arr) == blob  # accepted only when exact


@given(st.binary(max_size=120))
def test_dead_letter_unpacking(blob: bytes) -> None:
    try:
        fields = DeadLetter.unpack_fields(blob)
    except DecodeError:
        return
    assert DeadLetter.pack_fields(fields) == blob  # accepted only when exact: a truncated blob is refused


@given(st.dictionaries(st.binary(max_size=10), st.binary(max_size=40), max_size=6))
def test_dead_letter_packing_round_trips(fields: dict[bytes, bytes]) -> None:
    assert DeadLetter.unpack_fields(DeadLetter.pack_fields(fields)) == fields


# ------------------------------------------------------------------------------------------ SessionInfo

INFO = SessionInfo(sid="s1", patient_id="p1", protocol="pfed5", consent=Consent(live_scoring=True), state="live",
                   source="webrtc", fps=30.0, created_ts=1.0, stats={"frames": 3})  # fmt: skip
ODD_TEXT = ["nan", "inf", "-inf", "1e999", "１２", "0x10", "[]", "{}", '{"a": 1e999}', '{"a": {"b": 1}}', "[" * 5000,
            "\ud800", "9" * 5000]  # fmt: skip
text_values = st.text(max_size=20) | st.sampled_from(ODD_TEXT)


def info_or_refuse(fields: Mapping[Any, Any]) -> SessionInfo | None:
    try:
        info = SessionInfo.decode(fields)
    except DecodeError:
        return None
    assert isinstance(info.consent, Consent) and info.state in ("created", "live", "ended")
    for name, kind in (("sid", str), ("patient_id", str), ("protocol", str), ("source", str), ("end_reason", str),
                       ("clinic", str), ("phantom", str)):  # fmt: skip
        value = getattr(info, name)
        assert isinstance(value, kind)
        value.encode("utf-8")  # no lone surrogate reaches a consumer
    for name in ("fps", "created_ts", "started_ts", "ended_ts", "joined_ts", "purge_ts", "obs_purge_ts"):
        assert type(getattr(info, name)) is float, name
    assert type(info.width) is int and type(info.height) is int
    assert all(isinstance(k, str) and type(v) is int for k, v in info.stats.items())
    return info


@given(st.dictionaries(st.sampled_from(sorted(INFO.encode())) | st.text(max_size=8), text_values, max_size=25))
def test_session_hashes_of_junk(fields: dict[str, str]) -> None:
    info_or_refuse(fields)


@given(st.sampled_from(sorted(INFO.encode())), text_values, st.booleans())
def test_damaged_session_hashes(name: str, value: str, as_bytes: bool) -> None:
    fields: dict[Any, Any] = {**INFO.encode(), name: value}
    if as_bytes:
        fields = {k.encode(): v.encode("utf-8", "surrogatepass") for k, v in fields.items()}
    info_or_refuse(fields)


def test_a_session_hash_round_trips() -> None:
    assert SessionInfo.decode(INFO.encode()) == INFO
    assert SessionInfo.decode({k.encode(): v.encode() for k, v in INFO.encode().items()}) == INFO
