"""The fleet's Faust agents in Faust's test context (no broker): patient trends from task scores, deterioration
flags from trends; the numbers are common.longitudinal's, repeats change nothing, bad records are dropped."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import faust
import pytest

from common.longitudinal import analyse
from fleet.agents import Fleet, build, keyed_sink
from fleet.history import add_score, history_key, new_history
from fleet.records import FlagRecord, ScoreRecord, TrendRecord, problem, score_record
from fleet.settings import FleetSettings
from tests.fleet_kit import DAY, T0, session_info, task_score

pytestmark = pytest.mark.unit

WORSE = [1.0, 1.1, 0.9, 2.2, 2.6]  # the dashboard history test's series: flagged at the 5th session
STEADY = [1.0, 1.1, 0.9, 1.0, 1.05]


class Outbox:
    """The agents' ``send``: what each sink delivered, per topic."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, faust.Record]] = []

    async def __call__(self, topic: str, key: bytes, value: faust.Record) -> None:
        self.sent.append((topic, key, value))

    def on(self, topic: str) -> list[Any]:
        return [v for t, _k, v in self.sent if t == topic]


def records(patient: str, values: list[float], *, week0: int = 0) -> list[ScoreRecord]:
    """Two smile task scores (value -/+ 0.1) per weekly session, as the bridge makes them."""
    out = []
    for i, v in enumerate(values):
        sid = f"{patient}s{week0 + i}"
        info = session_info(sid, patient, T0 + (week0 + i) * 7 * DAY)
        out += [score_record(task_score(sid, v + d, rep=r), info) for r, d in enumerate((-0.1, 0.1))]
    return out


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def feed(fleet: Fleet, recs: list[Any]) -> None:
    """Put records into the trends agent and wait until it has handled them all."""
    target = fleet.stats.records + len(recs)
    async with fleet.patient_trends.test_context() as agent:
        for r in recs:
            await agent.put(r, wait=False)  # an agent that yields nothing for a record would block put(wait=True)
        await until(lambda: fleet.stats.records == target, "the trends agent")


async def feed_flags(fleet: Fleet, trends: list[TrendRecord]) -> None:
    """Put trends into the flags agent and wait until it has handled them all."""
    target = fleet.stats.trends_seen + len(trends)
    async with fleet.deterioration_flags.test_context() as agent:
        for t in trends:
            await agent.put(t, wait=False)
        await until(lambda: fleet.stats.trends_seen == target, "the flags agent")


def plain(record: faust.Record) -> dict[str, Any]:
    """A record's fields with NaN as None (NaN != NaN)."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.asdict().items()}


def fleet_with(outbox: Outbox, **overrides: Any) -> Fleet:
    return build(FleetSettings(**overrides), send=outbox)


async def test_trends_are_the_dashboards_numbers_and_a_worsening_patient_is_flagged() -> None:
    out = Outbox()
    fleet = fleet_with(out)
    await feed(fleet, records("pw", WORSE) + records("ps", STEADY))
    trends = out.on("feqa.trends")
    assert len(trends) == 20 and fleet.stats.trends == 20
    last = {t.patient: t for t in trends}
    for patient, values in (("pw", WORSE), ("ps", STEADY)):
        expected = analyse([T0 + i * 7 * DAY for i in range(5)], [[v - 0.1, v + 0.1] for v in values],
                           scale_min=0, scale_max=4)  # fmt: skip
        got = last[patient]
        assert got.sessions == 5 and got.baseline_n == 3
        assert got.baseline_mean == pytest.approx(expected.baseline.mean)
        assert (got.baseline_low, got.baseline_high) == pytest.approx((expected.baseline.low, expected.baseline.high))
        assert got.slope_per_30d == pytest.approx(expected.trend.slope_per_30d)
        assert got.worse == expected.flag.worse and got.reason == expected.flag.reason
    assert last["pw"].worse and last["pw"].margin > 0 and last["pw"].slope_per_30d > 0
    assert not last["ps"].worse
    # every trend went out keyed by its patient, so the flags agent's table sees a patient on one partition
    assert {(k, v.patient) for t, k, v in out.sent} == {(b"pw", "pw"), (b"ps", "ps")}
    assert [t.worse for t in trends if t.patient == "pw"] == [False] * 8 + [True] * 2  # 5th session, from its 1st rep

    await feed_flags(fleet, [{"not": "a trend"}, *trends])  # type: ignore[list-item]
    assert fleet.stats.invalid == 1
    flags = out.on("feqa.flags")
    assert [(f.patient, f.worse) for f in flags] == [("pw", True)]  # raised once, for the worsening patient only
    assert flags[0].ts == pytest.approx(T0 + 4 * 7 * DAY) and "above baseline" in flags[0].reason


async def test_a_repeated_score_changes_nothing() -> None:
    out = Outbox()
    fleet = fleet_with(out)
    recs = records("pr", WORSE)
    await feed(fleet, recs[:6] + recs[:6] + recs[6:] + recs[3:5])  # at-least-once: the bridge resent some
    assert fleet.stats.repeats == 8 and fleet.stats.trends == len(recs)
    clean = Outbox()
    reference = fleet_with(clean)
    await feed(reference, recs)
    assert [plain(t) for t in out.on("feqa.trends")] == [plain(t) for t in clean.on("feqa.trends")]


async def test_a_flag_is_raised_once_and_cleared_when_the_patient_is_back_in_the_band() -> None:
    out = Outbox()
    fleet = fleet_with(out)
    recs = records("pc", [1.0, 1.1, 0.9, 2.4, 2.6, 2.5, 1.0, 1.0])
    await feed(fleet, recs)
    await feed_flags(fleet, out.on("feqa.trends"))
    assert [f.worse for f in out.on("feqa.flags")] == [True, False]


async def test_bad_records_are_dropped_and_counted_and_the_agent_goes_on() -> None:
    out = Outbox()
    fleet = fleet_with(out)
    good = records("pb", [1.0])
    base = good[0].asdict()
    bad = [
        ScoreRecord(**{**base, "v": 99}),
        ScoreRecord(**{**base, "task": "blow"}),  # not a pfed5 task
        ScoreRecord(**{**base, "protocol": "nope"}),
        ScoreRecord(**{**base, "patient": ""}),
        ScoreRecord(**{**base, "score": math.nan}),
        ScoreRecord(**{**base, "score": None, "withheld": ""}),
        ScoreRecord(**{**base, "session_ts": math.inf}),
        ScoreRecord(**{**base, "key": None}),
        {"not": "a record"},
    ]
    assert all(problem(b) for b in bad if isinstance(b, ScoreRecord))
    await feed(fleet, [*bad, *good])
    assert fleet.stats.invalid == len(bad) and fleet.stats.trends == 2
    assert [t.patient for t in out.on("feqa.trends")] == ["pb", "pb"]


async def test_withheld_task_scores_are_kept_but_are_not_values() -> None:
    out = Outbox()
    fleet = fleet_with(out)
    info = session_info("sw1", "pw2", T0)
    await feed(fleet, [score_record(task_score("sw1", None), info), score_record(task_score("sw1", 2.0, rep=1), info)])
    first, second = out.on("feqa.trends")
    assert first.sessions == 0 and first.reason == "no baseline yet" and math.isnan(first.baseline_mean)
    assert second.sessions == 1 and second.baseline_mean == pytest.approx(2.0)


def test_the_bridges_bytes_decode_as_the_scores_topics_records() -> None:
    fleet = fleet_with(Outbox())
    rec = records("pk", [1.5])[0]
    decoded = fleet.app.serializers.loads_value(ScoreRecord, rec.dumps(), serializer="json")
    assert isinstance(decoded, ScoreRecord) and decoded.asdict() == rec.asdict() and problem(decoded) == ""
    settings = FleetSettings()
    assert fleet.patient_trends.channel.get_topic_name() == settings.scores_topic  # type: ignore[attr-defined]
    assert fleet.deterioration_flags.channel.get_topic_name() == settings.trends_topic  # type: ignore[attr-defined]


async def test_the_sink_keys_by_patient() -> None:
    out = Outbox()
    sink = keyed_sink(out, "feqa.flags")
    flag = FlagRecord(v=1, patient="p/ü", clinic="c", protocol="pfed5", task="smile", worse=True, margin=0.5,
                      reason="r", ts=T0)  # fmt: skip
    await sink(flag)
    assert out.sent == [("feqa.flags", "p/ü".encode(), flag)]


def test_histories_keep_the_baseline_and_the_newest_sessions() -> None:
    recs = records("ph", [float(i % 4) for i in range(12)])[::2]  # one score per session
    history = new_history(recs[0])
    for r in recs:
        assert add_score(history, r, max_sessions=6, keep_first=3)
    assert not add_score(history, recs[-1], max_sessions=6, keep_first=3)
    assert [s["sid"] for s in history["sessions"]] == ["phs0", "phs1", "phs2", "phs9", "phs10", "phs11"]
    assert history_key("a", "pfed5", "smile") != history_key("a,", "pfed5", "smile")  # names cannot collide


def test_settings_refuse_bad_brokers() -> None:
    assert FleetSettings(brokers="k1:9092, k2:9093").faust_broker() == "kafka://k1:9092;kafka://k2:9093"
    for bad in ("", "k1", "k1:port", "k1:0", ":9092"):
        with pytest.raises(ValueError, match=r"FEQA_FLEET_BROKERS|host:port"):
            FleetSettings(brokers=bad)
