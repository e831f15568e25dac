"""Fuzzing the bus's one decode path on a real Redis: any entry in a group stream comes out of ``consume`` as a
well-typed message or is dead-lettered whole (its fields byte for byte, the reason, then acked), and the consumer
goes on; plain reads skip and count what they cannot decode. ``pytest --long -m fuzz``: 10,000 entries per target."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from hypothesis import strategies as st

from common.backlog import pending_count
from common.bus import Bus
from common.messages import ALL_MESSAGES, DeadLetter, Message
from common.streams import DEADLETTER, StreamSpec
from infra.redis_server import RedisServer
from tests.fuzz_kit import damaged, examples, junk_fields, message_strategy, run_property, well_typed

pytestmark = [pytest.mark.integration, pytest.mark.fuzz, pytest.mark.timeout(3600)]

KINDS = {cls.KIND: cls for cls in ALL_MESSAGES}


# Dead letters land in the one dead-letter stream: a Redis of the module's own (tests/conftest.py module_redis,
# module_bus) keeps other tests' dead letters out of what these tests count.


def entries(cls: type[Message]) -> st.SearchStrategy[dict[bytes, bytes]]:
    valid = message_strategy(cls)
    return st.one_of(valid.map(lambda m: dict(m.encode())), damaged(valid), junk_fields).filter(bool)


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_every_entry_is_delivered_well_typed_or_dead_lettered(
    kind: str, module_bus: Bus, module_redis: RedisServer, long_run: bool
) -> None:
    cls = KINDS[kind]
    spec = StreamSpec(f"fuzz-{kind}:{{sid}}", cls, maxlen=1000, group="g")
    sid = f"f{kind}{time.time_ns()}"
    raw = redis.Redis.from_url(module_redis.url)
    await module_bus.ensure_group(spec, sid)
    counts = {"delivered": 0, "dead": 0}
    tasks_before = len(asyncio.all_tasks())

    async def one(fields: dict[bytes, bytes]) -> None:
        entry_id = raw.xadd(spec.key(sid), fields).decode()  # type: ignore[arg-type]
        newest = raw.xrevrange(DEADLETTER.key(), count=1)
        letter_before = newest[0][0] if newest else b""
        got = await module_bus.consume(spec, [sid], "c", count=10, block_ms=None)
        if got:
            (d,) = got
            assert d.id == entry_id and well_typed(d.message) == [], d.message
            await module_bus.ack(got)
            counts["delivered"] += 1
        else:
            ((letter_id, letter_fields),) = raw.xrevrange(DEADLETTER.key(), count=1)
            letter = DeadLetter.decode(letter_fields)
            assert letter_id != letter_before  # a new letter (the stream is capped, so its length stops growing)
            assert letter.entry_id == entry_id and letter.stream == spec.key(sid) and letter.error
            assert DeadLetter.unpack_fields(letter.original) == fields  # kept whole
            counts["dead"] += 1
        assert await pending_count(module_bus, spec, sid) == 0

    ran = await run_property(entries(cls), one)
    raw.close()
    assert ran >= examples(long_run), ran
    assert counts["delivered"] and counts["dead"], counts  # both paths were exercised
    assert len(asyncio.all_tasks()) == tasks_before  # no task left hanging


async def test_plain_reads_skip_and_count_what_does_not_decode(module_bus: Bus, module_redis: RedisServer) -> None:
    spec = StreamSpec("fuzz-plain:{sid}", KINDS["event"], maxlen=1000)
    raw = redis.Redis.from_url(module_redis.url)

    async def batch(entries: list[dict[bytes, bytes]]) -> None:
        sid = f"p{time.time_ns()}"
        for fields in entries:
            raw.xadd(spec.key(sid), fields)  # type: ignore[arg-type]
        skipped = module_bus.stats.skipped
        ok = await module_bus.range(spec, sid)
        newest = await module_bus.latest(spec, sid, 10)
        assert all(well_typed(d.message) == [] for d in ok + newest)
        assert module_bus.stats.skipped - skipped == 2 * (len(entries) - len(ok))

    await run_property(st.lists(entries(KINDS["event"]), min_size=1, max_size=5), batch)
    raw.close()
