"""The scores consumer on a real Redis: task scores stored once, redeliveries ignored, a dead consumer's pending
entries taken over, and nothing lost while the dashboard is down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from common.backlog import pending_count
from common.bus import Bus
from common.session_store import SessionStore
from common.streams import SCORES
from dashboard.consumer import ScoreConsumer
from dashboard.db import Database
from dashboard.tables import Kinematic, Patient, Session, TaskScore
from infra.redis_server import RedisServer
from tests.conftest import live_session
from tests.dashboard_kit import make_accounts, publish_scores, running, score, settings_for, sqlite_url

pytestmark = pytest.mark.integration


def _session(db: Database, clinic_id: int, sid: str, state: str = "live") -> int:
    with db.session() as s:
        patient = Patient(clinic_id=clinic_id, ref="pt-" + sid, display_name="P", mrn=sid, created_ts=1.0)
        s.add(patient)
        s.flush()
        row = Session(
            sid=sid,
            patient_id=patient.id,
            clinic_id=clinic_id,
            protocol="pfed5",
            consent_live_scoring=True,
            consent_recording=False,
            consent_research=False,
            state=state,
            created_ts=time.time(),
            started_ts=0.0,
            ended_ts=0.0,
            end_reason="",
            join_url="http://x/join/t",
            join_expires_ts=0.0,
            note="",
        )
        s.add(row)
        s.flush()
        return row.id


def _count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(TaskScore)) or 0)


async def test_task_scores_are_stored_once(redis_server: RedisServer, tmp_path: Path, bus: Bus, sid: str) -> None:
    url = sqlite_url(tmp_path)
    ids = make_accounts(url)
    db = Database(url)
    _session(db, ids.clinic_a, sid)
    await live_session(bus, sid)
    consumer = ScoreConsumer(bus, db, "c1", block_ms=50)
    tasks = [score(sid, kind="task", task=t, rep=0, last_seq=100 + i) for i, t in enumerate(("smile", "frown"))]
    withheld = score(sid, kind="task", task="rest", last_seq=90, value=None)
    await publish_scores(bus, [score(sid, last_seq=i) for i in range(5)] + [*tasks, withheld])
    await publish_scores(bus, [tasks[0]])  # the scorer published one twice (a retried publish)
    # a tracker handover emitted the smile's end twice: a second task score of that repetition, clip end 8 later
    await publish_scores(bus, [score(sid, kind="task", task="smile", rep=0, last_seq=108, value=3.5)])
    for _ in range(5):
        await consumer.step()
    assert _count(db) == 3
    assert consumer.stats.duplicates == 2 and consumer.stats.task_scores == 3
    with db.session() as s:
        rows = {r.task: r for r in s.scalars(select(TaskScore))}
        kin = list(s.scalars(select(Kinematic).where(Kinematic.task_score_id == rows["smile"].id)))
    assert rows["rest"].score is None and rows["rest"].withheld == "quality:face_fraction"
    assert rows["smile"].score == pytest.approx(1.5) and rows["smile"].model == "trampformer:pfed5/smile"
    assert {k.name for k in kin} == {"rom_mouth", "asym_mouth", "blink_rate"}
    assert await pending_count(bus, SCORES, sid) == 0


async def test_a_dead_consumers_pending_scores_are_taken_over(
    redis_server: RedisServer, tmp_path: Path, bus: Bus, sid: str
) -> None:
    url = sqlite_url(tmp_path)
    ids = make_accounts(url)
    db = Database(url)
    _session(db, ids.clinic_a, sid)
    await live_session(bus, sid)
    await publish_scores(bus, [score(sid, kind="task", task="smile", last_seq=200)])
    # a dashboard read the entry and died before storing and acking it
    got = await bus.consume(SCORES, [sid], "dead", count=10, block_ms=100)
    assert len(got) == 1 and await pending_count(bus, SCORES, sid) == 1
    survivor = ScoreConsumer(bus, db, "alive", reclaim_idle_ms=200, block_ms=50)
    await survivor.step()
    assert _count(db) == 0  # not idle long enough yet: a live consumer's entry is left alone
    await asyncio.sleep(1.1)
    await survivor.step()
    assert _count(db) == 1 and survivor.stats.reclaimed == 1
    assert await pending_count(bus, SCORES, sid) == 0


async def test_scores_published_while_the_dashboard_is_down_are_stored_at_start(
    redis_server: RedisServer, tmp_path: Path, bus: Bus, sid: str
) -> None:
    url = sqlite_url(tmp_path)
    ids = make_accounts(url)
    db = Database(url)
    _session(db, ids.clinic_a, sid, state="created")
    settings = settings_for(redis_server.url, url)
    async with running(settings):  # up once, then down
        await asyncio.sleep(0.3)
    # while it is down the session starts, its task scores arrive and it ends (all announced on feqa:sessions)
    await live_session(bus, sid)
    await publish_scores(
        bus, [score(sid, kind="task", task=t, last_seq=300 + i) for i, t in enumerate(("smile", "frown"))]
    )
    assert await SessionStore(bus).end(sid, "completed")
    assert _count(db) == 0
    async with running(settings) as (_app, state):  # no page open: the consumer alone stores them
        deadline = time.monotonic() + 15
        while _count(db) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert state.consumer.stats.task_scores == 2
    assert _count(db) == 2
    with db.session() as s:
        row = s.scalar(select(Session).where(Session.sid == sid))
        assert row is not None and row.state == "ended" and row.end_reason == "completed" and row.join_url == ""
