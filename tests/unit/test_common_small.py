"""Stream keys, frame encodings, settings and logging of common/."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from common.errors import BusUnavailable, DecodeError, PermanentError, RetryableError, SchemaVersionError
from common.framecodec import ENCODINGS, decode_frame, encode_frame
from common.logs import JsonFormatter, session_logger
from common.settings import CommonSettings
from common.streams import ALL_KEYS, ALL_STREAMS, CROPS, FRAMES, OBS, WINDOWS, lease_spec, session_key

pytestmark = pytest.mark.unit


def test_per_session_keys_carry_a_hash_tag() -> None:
    assert FRAMES.key("abc") == "frames:{abc}"
    assert session_key("abc") == "session:{abc}"
    assert WINDOWS.key("abc") == "windows:{abc}"
    with pytest.raises(ValueError, match="needs a session id"):
        FRAMES.key()
    with pytest.raises(ValueError, match="not allowed"):
        FRAMES.key("a}b")


def test_stream_bounds_meet_the_design() -> None:
    assert OBS.maxlen >= 256
    assert CROPS.maxlen >= 80
    assert all(s.maxlen > 0 and s.policy for s in ALL_STREAMS)
    assert len({s.template for s in ALL_STREAMS}) == len(ALL_STREAMS)
    assert {s.template for s in ALL_STREAMS if s.retention == "delete"} == {"frames:{sid}", "crops:{sid}"}
    assert {s.template for s in ALL_STREAMS if s.retention == "obs"} == {"obs:{sid}"}
    assert all(s.session_bound == s.per_session for s in ALL_STREAMS)  # every per-session stream ends with it


def test_the_key_table_lists_every_other_key() -> None:
    templates = {k.template for k in ALL_KEYS}
    assert templates == {"session:{sid}", "ingest-lease:{sid}", "tracker-lease:{sid}", "scorer-lease:{sid}",
                         "feqa:live", "feqa:join:<digest>", "joinlinks:{sid}", "pagekey:{sid}"}  # fmt: skip
    assert lease_spec("scorer").key("a") == "scorer-lease:{a}"
    with pytest.raises(ValueError, match="unknown lease role"):
        lease_spec("janitor")
    join = next(k for k in ALL_KEYS if k.template.startswith("feqa:join"))
    assert join.key("ab12") == "feqa:join:ab12"
    with pytest.raises(ValueError, match="plain name"):
        join.key("a:b")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_frame_encodings_round_trip(encoding: str) -> None:
    rng = np.random.default_rng(1)
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = (200, 40, 10)
    img[:, 32:] = rng.integers(0, 255, (48, 32, 3), dtype=np.uint8) // 4 + 100
    back = decode_frame(encode_frame(img, encoding), 64, 48, encoding)
    assert back.shape == img.shape
    tol = {"rgb24": 0, "bgr24": 0, "i420": 12, "jpeg": 20}[encoding]
    assert np.abs(back[:, :28].astype(int) - img[:, :28]).mean() <= tol


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_corrupt_frames_are_decode_errors(encoding: str) -> None:
    with pytest.raises(DecodeError):
        decode_frame(b"\x00" * 17, 64, 48, encoding)


def test_unknown_encoding() -> None:
    with pytest.raises(DecodeError, match="unknown"):
        decode_frame(b"", 2, 2, "png")
    with pytest.raises(ValueError, match="unknown"):
        encode_frame(np.zeros((2, 2, 3), np.uint8), "png")


def test_errors_carry_retry_policy() -> None:
    assert BusUnavailable("x").retryable
    assert issubclass(BusUnavailable, RetryableError)
    assert not SchemaVersionError("x").retryable
    assert issubclass(SchemaVersionError, DecodeError)
    assert issubclass(DecodeError, PermanentError)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEQA_REDIS_URL", "redis://127.0.0.1:7000/1")
    monkeypatch.setenv("FEQA_LOG_FORMAT", "json")
    s = CommonSettings()
    assert s.redis_url == "redis://127.0.0.1:7000/1"
    assert s.log_format == "json"
    monkeypatch.setenv("FEQA_LOG_LEVEL", "LOUD")
    with pytest.raises(ValueError, match="log_level"):
        CommonSettings()


def test_json_log_lines_carry_the_session_id() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("feqa.test.logs")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    session_logger(logger, "s123").info("frame %d dropped", 7)
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["sid"] == "s123"
    assert line["msg"] == "frame 7 dropped"
    assert line["level"] == "INFO"
