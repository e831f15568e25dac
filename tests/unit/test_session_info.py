"""SessionInfo and Consent: the one encode/decode of the session:{sid} hash."""

from __future__ import annotations

import dataclasses

import pytest

from common.errors import DecodeError, SchemaVersionError
from common.messages import Consent, SessionInfo

pytestmark = pytest.mark.unit

INFO = SessionInfo(sid="s1", patient_id="p-7", protocol="palsy", consent=Consent(live_scoring=True, research=True),
                   state="live", source="webrtc", fps=30.0, created_ts=1.5, started_ts=2.25, phantom="{}",
                   stats={"published": 40}, width=640, height=480)  # fmt: skip


def _as_redis(fields: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in fields.items()}


def test_round_trip_through_redis_bytes() -> None:
    back = SessionInfo.decode(_as_redis(INFO.encode()))
    assert back == INFO
    assert back.may_score and not back.ended and back.consent.as_dict() == {
        "live_scoring": True, "recording": False, "research": True,
    }  # fmt: skip


def test_changes_are_validated_and_applied() -> None:
    fields = INFO.encode() | SessionInfo.changes(state="ended", ended_ts=9.0, end_reason="hangup", stats={"a": 1})
    back = SessionInfo.decode(fields)
    assert (back.state, back.ended_ts, back.end_reason, back.stats) == ("ended", 9.0, "hangup", {"a": 1})
    with pytest.raises(ValueError, match="no fields"):
        SessionInfo.changes(colour="red")
    with pytest.raises(ValueError, match="state"):
        SessionInfo.changes(state="paused")


def test_no_consent_means_tracked_but_never_scored() -> None:
    quiet = dataclasses.replace(INFO, consent=Consent())
    assert not SessionInfo.decode(quiet.encode()).may_score
    assert Consent() == Consent(live_scoring=False, recording=False, research=False)
    with pytest.raises(ValueError, match="unknown consent flags"):
        Consent.from_mapping({"training": True})


def test_bad_hashes_are_decode_errors() -> None:
    with pytest.raises(DecodeError, match="no session hash"):
        SessionInfo.decode({})
    with pytest.raises(SchemaVersionError):
        SessionInfo.decode(INFO.encode() | {"v": "9"})
    missing = INFO.encode()
    del missing["protocol"]
    with pytest.raises(DecodeError, match="lacks field"):
        SessionInfo.decode(missing)
    with pytest.raises(DecodeError, match="malformed"):
        SessionInfo.decode(INFO.encode() | {"fps": "fast"})
    with pytest.raises(DecodeError, match="malformed"):
        SessionInfo.decode(INFO.encode() | {"state": "paused"})
