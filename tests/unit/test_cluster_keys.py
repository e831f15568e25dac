"""Redis Cluster: every per-session key of the key table (common/streams.py) carries the session id as its hash
tag, so all of a session's keys live in one slot (one shard) and its Lua scripts may touch them together."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from common.streams import ALL_KEYS, ALL_STREAMS, FLEET_SCORES, LEASE_ROLES, lease_spec

pytestmark = pytest.mark.unit

SIDS = ("abc", "s-7f3e9a", "x" * 40, "Ünï")


def test_every_per_session_key_hashes_to_the_session_slot() -> None:
    specs = [*ALL_STREAMS, FLEET_SCORES, *ALL_KEYS, *(lease_spec(r) for r in LEASE_ROLES)]
    per_session = [s for s in specs if s.per_session]
    assert len(per_session) >= 11  # events, frames, obs, crops, windows, scores x2, coach, session, 3 leases, page key
    for sid in SIDS:
        slot = key_slot(sid.encode())
        for spec in per_session:
            key = spec.key(sid)
            assert "{" + sid + "}" in key and key.count("{") == 1, key
            assert key_slot(key.encode()) == slot, key
    # the others are global names, never a template that could hold a session's data
    for spec in specs:
        if not spec.per_session:
            assert spec.template.startswith("feqa:"), spec.template


def test_session_ids_cannot_break_out_of_their_hash_tag() -> None:
    for spec in (s for s in ALL_STREAMS if s.per_session):
        for bad in ("a}b", "{a", "a:b", "", "a b"):
            with pytest.raises(ValueError):
                spec.key(bad)
