"""The scores bridge on a real Redis with a fake Kafka producer (our Producer Protocol): task scores reach the topic
keyed by patient, at least once through Kafka failures and a bridge killed mid-batch, nothing is acked before Kafka
has it, and bad entries are dead-lettered while the bridge goes on."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from common.backlog import pending_count
from common.bus import Bus
from common.messages import Consent, DeadLetter, Health, Score
from common.session_store import SessionStore
from common.streams import DEADLETTER, FLEET_SCORES, HEALTH, SCORES
from fleet.agents import build
from fleet.bridge import ScoresBridge
from fleet.producer import KafkaProducer, ProducerUnavailable
from fleet.records import ScoreRecord
from fleet.settings import FleetSettings
from infra.redis_server import RedisServer
from tests.conftest import live_session
from tests.fleet_kit import FakeKafka, task_score

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SETTINGS = FleetSettings(block_ms=30, reclaim_idle_ms=300, health_every_s=0.2, send_timeout_s=2.0)


# The bridge reads every session of its Redis: these tests use a Redis of the module's own (tests/conftest.py
# module_redis, module_bus), so other tests' sessions stay out.


@pytest.fixture
def raw(module_redis: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(module_redis.url)
    yield client
    client.close()


async def run_until(bridge: ScoresBridge, cond: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    stop = asyncio.Event()
    task = asyncio.ensure_future(bridge.run(stop))
    try:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if task.done():
                task.result()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; counters {dict(bridge.counters)}")
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def decoded(kafka: FakeKafka) -> list[tuple[str, str, dict[str, Any]]]:
    return [(topic, key.decode(), json.loads(value)) for topic, key, value in kafka.sent]


async def scores_for(bus: Bus, sid: str, values: list[float | None]) -> list[Score]:
    scores = [task_score(sid, v, rep=i) for i, v in enumerate(values)]
    scores.insert(1, task_score(sid, 1.0, kind="window", last_seq=7))  # continuous scores stay in Redis
    await bus.publish_many(SCORES, scores)
    return scores


async def test_task_scores_reach_kafka_keyed_by_patient_and_are_acked_after(module_bus: Bus, sid: str) -> None:
    early, late = sid + "a", sid + "b"
    await live_session(module_bus, early)  # started (and scored) before the bridge runs: nothing of it is lost
    s1 = await scores_for(module_bus, early, [1.0, 2.0, None])
    kafka = FakeKafka()
    bridge = ScoresBridge(module_bus, kafka, SETTINGS, "bridge-1")
    await live_session(module_bus, late, consent=Consent(live_scoring=True, research=True))
    s2 = await scores_for(module_bus, late, [3.5])
    await run_until(bridge, lambda: len(kafka.sent) == 4, "four task scores")
    got = decoded(kafka)
    assert {t for t, _, _ in got} == {"feqa.scores"}
    assert [(k, v["key"]) for _, k, v in got] == [("p-" + early, s.key) for s in s1 if s.kind == "task"] + [
        ("p-" + late, s2[0].key)
    ]  # keyed by the session's patient ref, in stream order
    first = got[0][2]
    assert first["score"] == 1.0 and first["protocol"] == "pfed5" and first["task"] == "smile" and first["v"] == 1
    assert first["sid"] == early and first["session_ts"] > 0 and got[2][2]["score"] is None  # withheld ones too
    assert bridge.counters["skipped_window"] == 2 and bridge.counters["sent"] == 4
    for s in (early, late):
        assert await pending_count(module_bus, FLEET_SCORES, s) == 0
    # the dashboard's own group is untouched: it still has every entry to read
    got_dash = await module_bus.consume(SCORES, [early], "dash", count=50, block_ms=None)
    assert len(got_dash) == 4


async def test_nothing_is_acked_while_kafka_refuses_and_nothing_is_lost(module_bus: Bus, sid: str) -> None:
    await live_session(module_bus, sid)
    scores = await scores_for(module_bus, sid, [1.0, 1.5, 2.0])
    kafka = FakeKafka(fail=lambda n: "broker unreachable (fake)" if n <= 3 else "")
    bridge = ScoresBridge(module_bus, kafka, SETTINGS, "bridge-2")
    pending_seen: list[int] = []

    async def watch() -> None:
        while kafka.calls < 3:
            await asyncio.sleep(0.01)
        pending_seen.append(await pending_count(module_bus, FLEET_SCORES, sid))

    watcher = asyncio.ensure_future(watch())
    await run_until(bridge, lambda: len(kafka.sent) == 3, "the batch after Kafka recovers")
    await watcher
    assert pending_seen == [4]  # read, refused by Kafka, held unacked
    assert bridge.counters["send_failures"] == 3
    assert [v["key"] for _, _, v in decoded(kafka)] == [s.key for s in scores if s.kind == "task"]  # once each
    assert await pending_count(module_bus, FLEET_SCORES, sid) == 0


async def test_a_bridge_killed_between_kafka_and_its_ack_is_taken_over_and_repeats_are_harmless(
    module_bus: Bus, sid: str
) -> None:
    await live_session(module_bus, sid)
    scores = await scores_for(module_bus, sid, [1.0, 1.2, 0.8, 2.5])
    doomed_kafka = FakeKafka(hang_after_send=True)
    doomed = ScoresBridge(module_bus, doomed_kafka, SETTINGS, "bridge-doomed")
    stop = asyncio.Event()
    task = asyncio.ensure_future(doomed.run(stop))
    while not doomed_kafka.sent:
        await asyncio.sleep(0.01)
    task.cancel()  # killed after Kafka took the batch, before the Redis ack
    await asyncio.gather(task, return_exceptions=True)
    assert await pending_count(module_bus, FLEET_SCORES, sid) == 5
    kafka = FakeKafka()
    heir = ScoresBridge(module_bus, kafka, SETTINGS, "bridge-heir")
    await run_until(heir, lambda: len(kafka.sent) == 4, "the heir to resend the pending batch")
    assert heir.counters["reclaimed"] == 5 and await pending_count(module_bus, FLEET_SCORES, sid) == 0
    # every score reached Kafka twice; the agents count each once
    both = doomed_kafka.sent + kafka.sent
    assert sorted(json.loads(v)["key"] for _, _, v in both) == sorted(2 * [s.key for s in scores if s.kind == "task"])
    sent: list[Any] = []

    async def collect(topic: str, key: bytes, value: Any) -> None:
        sent.append(value)

    fleet = build(FleetSettings(), send=collect)
    async with fleet.patient_trends.test_context() as agent:
        for _, _, value in both:
            await agent.put(fleet.app.serializers.loads_value(ScoreRecord, value, serializer="json"), wait=False)
        while fleet.stats.records < len(both):
            await asyncio.sleep(0.01)
    assert fleet.stats.repeats == 4 and fleet.stats.trends == 4
    assert sent[-1].sessions == 1 and sent[-1].baseline_mean == pytest.approx((1.0 + 1.2 + 0.8 + 2.5) / 4)


async def test_bad_entries_are_dead_lettered_and_the_bridge_goes_on(
    module_bus: Bus, raw: redis.Redis, sid: str
) -> None:
    await live_session(module_bus, sid)
    key = SCORES.key(sid)
    junk = [{b"junk": b"1"}, task_score(sid, 1.0).encode() | {b"v": b"7"}, {b"k": b"score", b"v": b"2", b"m": b"{"}]
    bad_ids = [raw.xadd(key, f).decode() for f in junk]  # type: ignore[arg-type]
    stray = task_score("someone-else", 2.0)  # a score of another session in this session's stream
    await module_bus.publish(SCORES, stray, sid=sid)
    good = task_score(sid, 3.0, rep=4)
    await module_bus.publish(SCORES, good)
    kafka = FakeKafka()
    bridge = ScoresBridge(module_bus, kafka, SETTINGS, "bridge-3")
    dl_before = raw.xlen(DEADLETTER.key())
    await run_until(bridge, lambda: len(kafka.sent) == 1, "the good score")
    assert [json.loads(v)["key"] for _, _, v in kafka.sent] == [good.key]
    letters = [DeadLetter.decode(f) for _, f in raw.xrange(DEADLETTER.key())][dl_before:]
    assert [x.entry_id for x in letters][:3] == bad_ids and len(letters) == 4
    assert "another" not in letters[3].error and "someone-else" in letters[3].error
    assert DeadLetter.unpack_fields(letters[0].original) == junk[0]
    assert bridge.counters["wrong_session"] == 1 and bridge.health().counters["bus_dead_lettered"] == 4
    assert await pending_count(module_bus, FLEET_SCORES, sid) == 0


async def test_a_score_whose_session_is_gone_is_counted_not_sent(module_bus: Bus, raw: redis.Redis, sid: str) -> None:
    await live_session(module_bus, sid)
    await scores_for(module_bus, sid, [1.0])
    raw.delete(f"session:{{{sid}}}")  # the session hash expired (retention) before the bridge saw its scores
    kafka = FakeKafka()
    bridge = ScoresBridge(module_bus, kafka, SETTINGS, "bridge-4")
    await run_until(bridge, lambda: bridge.counters["no_session"] == 1, "the orphan score")
    assert kafka.sent == [] and await pending_count(module_bus, FLEET_SCORES, sid) == 0


async def test_an_ended_session_is_drained_then_dropped(module_bus: Bus, sid: str) -> None:
    await live_session(module_bus, sid)
    await SessionStore(module_bus).end(sid, "completed")
    await module_bus.publish(SCORES, task_score(sid, 2.0))  # a task score that arrives just after the end
    kafka = FakeKafka()
    bridge = ScoresBridge(module_bus, kafka, SETTINGS, "bridge-5")
    await run_until(bridge, lambda: len(kafka.sent) == 1, "the late task score")
    quick = ScoresBridge(module_bus, FakeKafka(), FleetSettings(drain_after_end_s=0, block_ms=30), "bridge-6")
    await quick.step()
    assert sid not in quick._readable()


async def test_the_bridge_publishes_health(module_bus: Bus, sid: str) -> None:
    await live_session(module_bus, sid)
    await scores_for(module_bus, sid, [1.0])
    kafka = FakeKafka()
    bridge = ScoresBridge(module_bus, kafka, SETTINGS, "bridge-7")

    async def health() -> list[Health]:
        return [d.message for d in await module_bus.latest(HEALTH, None, 50) if d.message.instance == "bridge-7"]

    seen: list[Health] = []

    def check() -> bool:
        return bool(kafka.sent) and bool(seen) and seen[-1].counters.get("sent", 0) >= 1

    stop = asyncio.Event()
    task = asyncio.ensure_future(bridge.run(stop))
    try:
        deadline = time.monotonic() + 20
        while not check():
            assert time.monotonic() < deadline, dict(bridge.counters)
            seen[:] = await health()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert seen[-1].service == "fleet-bridge" and seen[-1].gauges["sessions"] >= 1


async def test_the_kafka_producer_says_when_no_broker_answers() -> None:
    from tests.dashboard_kit import free_port

    producer = KafkaProducer([f"127.0.0.1:{free_port()}"], client_id="t", timeout_s=1.5)
    t0 = time.monotonic()
    with pytest.raises(ProducerUnavailable, match="FEQA_FLEET_BROKERS"):
        await producer.start()
    assert time.monotonic() - t0 < 10
    with pytest.raises(ProducerUnavailable, match="not started"):
        await producer.send_batch("feqa.scores", [(b"k", b"v")])
