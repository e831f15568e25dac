"""Faults on the embedded stack (``feqa demo``'s processes: Redis, ingest, two trackers with the real MediaPipe
landmarker, scorer, dashboard), with phantom patients streaming over WebRTC (aiortc senders) through the ingest's
public path. One stack serves the whole module; each test breaks one part of it (a patient's connection, or a
service by PID: infra.stack's fault helpers) and checks what a patient and a clinician would see:

- a patient's tab closes mid-session (the connection drops without the page's hangup request): the session ends
  with a recorded reason (in Redis and on the dashboard) and every resource is freed: the ingest's peer (its health
  shows no live session), the session's frames and crops, its page key (no page can drive it again), its join link,
  its place in the live set, the tracker's and scorer's leases; what stays is only what the retention keeps (the
  hash, events, windows, scores). This test runs first, on the stack as it started;
- one of two trackers is SIGKILLed mid-session: the other takes the session over and it keeps being scored, with
  less than 2 s between consecutive scores (the trackers' lease is 0.9 s here; with the default 3 s lease the gap
  is about 3-4 s);
- the only scorer is SIGKILLed and started again while task ends are published: no task score is lost (every
  task_end the patient sent has exactly one task score in the dashboard's database);
- the dashboard is SIGKILLed and started again while a clinician's Chromium shows the session: the page's websocket
  reconnects, and the task scores written while the dashboard was down reach the page and the database;
- Redis is restarted on its port (no persistence: the session's state is gone): the session ends with reason
  ``state_lost`` on the dashboard, every service reconnects without restarting, nothing is half-written in the
  database or left in Redis, and a new session is scored. This test runs last: it wipes the stack's state.

No model is served here (every test needs only the pipeline): window scores are withheld as ``no_task`` /
``no_model`` but carry the kinematics of the real landmarker's observations, and task scores are stored withheld.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from common.bus import Bus
from common.health import latest_health
from common.messages import Score
from common.session_store import STATE_LOST
from common.streams import (
    CROPS,
    FRAMES,
    HEALTH,
    JOIN,
    JOIN_LINKS,
    LIVE,
    OBS,
    PAGE_KEY,
    SCORES,
    WINDOWS,
    lease_spec,
    session_key,
)
from dashboard.db import Database
from dashboard.tables import Session as DbSession
from dashboard.tables import TaskScore
from infra.demo import USERNAME, Demo, DemoOptions
from infra.demo_dashboard import ClinicianClient
from infra.demo_patient import PatientError, PatientRun, run_patient
from infra.settings import StackSettings
from infra.stack import Child, Stack
from ingest.tokens import digest
from phantom.spec import PatientSpec
from tests.conftest import open_bus
from tests.dashboard_kit import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.beside, pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
# The trackers' lease and reclaim times short enough for a failover inside the 2 s budget (as in the tracker failover
# test), and reads of at most 8 frames, so that a batch (renewals wait for it) stays well inside the lease on a
# loaded machine; the dashboard takes over its own pending entries after 2 s instead of 15 s. The ingest ends a
# dropped connection's session after 4 s without frames (default 10 s) or 4 s of resume grace (default 15 s): the
# same end as with the defaults, sooner (the closed-tab test waits for it).
FAULT_ENV = {
    "FEQA_INGEST_IDLE_TIMEOUT_S": "4",
    "FEQA_INGEST_RESUME_GRACE_S": "4",
    "FEQA_TRACKER_LEASE_TTL_MS": "900",
    "FEQA_TRACKER_RECLAIM_IDLE_MS": "300",
    "FEQA_TRACKER_READ_COUNT": "8",
    "FEQA_DASHBOARD_RECLAIM_IDLE_MS": "2000",
}


@dataclasses.dataclass
class FaultStack:
    demo: Demo
    stack: Stack
    redis_url: str
    data: Path

    def database(self) -> Database:
        return Database(f"sqlite:///{self.data / 'dashboard.sqlite'}")


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    """The embedded stack with a second tracker; the demo's environment is put back once the children have it."""
    tmp = tmp_path_factory.mktemp("faults")
    settings = StackSettings(data_dir=tmp / "feqa", ingest_port=free_port(), dashboard_port=free_port())
    demo = Demo(DemoOptions(models_root=tmp / "models"), settings)
    saved = dict(os.environ)
    os.environ.update(FAULT_ENV)
    try:
        demo.start(tmp / "models" / "demo")  # no model: the pipeline is what these tests need
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert demo.stack is not None and demo.stack.redis is not None
    try:
        demo.stack.add("tracker")
        yield FaultStack(demo, demo.stack, demo.stack.redis.url, settings.data_dir.resolve())
    finally:
        demo.stop()


async def until(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy (returned); fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


@dataclasses.dataclass
class Patient:
    sid: str
    session_id: int
    task: asyncio.Task[PatientRun]


@contextlib.asynccontextmanager
async def clinician_and_bus(f: FaultStack) -> AsyncIterator[tuple[ClinicianClient, Bus]]:
    async with ClinicianClient(f.demo.dashboard_url) as dash:
        await dash.login(USERNAME, f.demo.password)
        async for bus in open_bus(f.redis_url):
            yield dash, bus


async def start_patient(f: FaultStack, dash: ClinicianClient, spec: PatientSpec) -> Patient:
    pid = await dash.patient(f"Fault patient {spec.seed}", f"FAULT-{spec.seed}", "synthetic")
    created = await dash.start_session(pid, "pfed5")
    token = str(created["join_url"]).rsplit("/", 1)[-1]
    task = asyncio.create_task(run_patient(f.demo.ingest_url, token, spec))
    return Patient(str(created["sid"]), int(created["id"]), task)


async def scores(bus: Bus, sid: str, kind: str) -> list[Score]:
    return [d.message for d in await bus.range(SCORES, sid) if d.message.kind == kind]


async def lease_holder(bus: Bus, key: str) -> str | None:
    value = await bus.run(f"get {key}", lambda r: r.get(key))
    return value.decode() if isinstance(value, bytes) else value


def owner_child(stack: Stack, name: str, owner: str) -> Child:
    """The process of service ``name`` whose consumer name (host-pid) holds a lease."""
    found = [c for c in stack.instances(name) if owner.endswith(f"-{c.proc.pid}")]
    assert len(found) == 1, (owner, [c.proc.pid for c in stack.instances(name)])
    return found[0]


def task_ends(run: PatientRun) -> list[tuple[str, int]]:
    return [(m.task, m.rep) for m in run.events if m.type == "task_end"]


async def stored_task_scores(f: FaultStack, session_id: int) -> list[tuple[str, int]]:
    db = f.database()
    try:
        with db.session() as s:
            rows = s.scalars(select(TaskScore).where(TaskScore.session_id == session_id)).all()
            return [(r.task, r.rep) for r in rows]
    finally:
        db.close()


async def test_closed_patient_tab_ends_the_session_and_frees_everything(faults: FaultStack) -> None:
    r = aioredis.from_url(faults.redis_url, decode_responses=True)
    try:
        async with clinician_and_bus(faults) as (dash, bus):
            pid = await dash.patient("Tab closer", "FAULT-1", "synthetic")
            created = await dash.start_session(pid, "pfed5")
            token = str(created["join_url"]).rsplit("/", 1)[-1]
            spec = PatientSpec(4242, "pfed5", 2.0, reps=3, head_motion=0.0)
            patient = asyncio.create_task(run_patient(faults.demo.ingest_url, token, spec))
            sid = str(created["sid"])

            async def observed() -> bool:
                return int(await r.xlen(OBS.key(sid))) >= 10 and bool(await r.exists(CROPS.key(sid)))

            await until(observed, 60, "observations and crops of the live session")
            held = [FRAMES.key(sid), lease_spec("tracker").key(sid), PAGE_KEY.key(sid), JOIN.key(digest(token)),
                    JOIN_LINKS.key(sid)]  # fmt: skip
            assert all([await r.exists(k) for k in held]), {k: await r.exists(k) for k in held}
            assert await r.sismember(LIVE.key(), sid)

            async def ingest_sessions() -> float:
                return sum(h.gauges.get("sessions", 0.0) for (service, _), h in (await latest_health(bus)).items()
                           if service == "ingest")  # fmt: skip

            async def peer_up() -> bool:
                return await ingest_sessions() == 1.0

            await until(peer_up, 10, "the ingest's health shows the live peer")
            t_close = time.monotonic()
            patient.cancel()  # the tab closes: the connection drops, no hangup request is sent
            await asyncio.gather(patient, return_exceptions=True)

            async def ended() -> bool:
                return await r.hget(session_key(sid), "state") == "ended"

            await until(ended, 30, "the session ended")
            reason = await r.hget(session_key(sid), "end_reason")
            assert reason in ("hangup", "idle_timeout"), reason

            leases = [lease_spec(role).key(sid) for role in ("ingest", "tracker", "scorer")]
            freed_keys = [FRAMES.key(sid), CROPS.key(sid), *leases, PAGE_KEY.key(sid), JOIN.key(digest(token)),
                          JOIN_LINKS.key(sid)]  # fmt: skip

            async def freed() -> bool:
                return not any([await r.exists(k) for k in freed_keys]) and not await r.sismember(LIVE.key(), sid)

            await until(freed, 30, "frames, crops, leases, page key, join link and live listing freed")

            async def peer_gone() -> bool:  # health is published every 2 s
                return await ingest_sessions() == 0.0

            await until(peer_gone, 10, "the ingest's peer closed (its health shows no live session)")
            print(f"ended ({reason}) and freed {time.monotonic() - t_close:.1f} s after the tab closed")

            async def dashboard_ended() -> bool:
                detail = await dash.json("GET", f"/api/sessions/{created['id']}")
                return bool(detail["session"]["state"] == "ended")

            await until(dashboard_ended, 30, "the dashboard shows the session ended")
            # the link is spent: joining again is refused with a clear status
            async with ClinicianClient(faults.demo.ingest_url) as again:
                res = await again.http.post(f"/api/join/{token}", json={"consent": True})
                assert res.status_code == 404 and "unknown join link" in res.json()["detail"], res.text
    finally:
        await r.aclose()


async def test_killed_tracker_session_keeps_being_scored(faults: FaultStack) -> None:
    assert len(faults.stack.instances("tracker")) == 2
    async with clinician_and_bus(faults) as (dash, bus):
        spec = PatientSpec(5101, "pfed5", 2.0, reps=3, tasks=("smile",), head_motion=0.0)
        p = await start_patient(faults, dash, spec)
        lease = lease_spec("tracker").key(p.sid)

        async def scored(n: int) -> bool:
            return len(await scores(bus, p.sid, "window")) >= n

        await until(lambda: scored(4), 60, "window scores of the live session")
        owner = await until(lambda: lease_holder(bus, lease), 10, "a tracker owns the session")
        victim = owner_child(faults.stack, "tracker", owner)
        killed_at = time.time()
        faults.stack.kill(victim)

        async def new_owner() -> str | None:
            value = await lease_holder(bus, lease)
            return value if value and value != owner else None

        took_over = await until(new_owner, 10, "the other tracker takes the session over")
        run = await asyncio.wait_for(p.task, 120)
        windows = sorted(await scores(bus, p.sid, "window"), key=lambda s: s.ts)
    after = [s for s in windows if s.ts > killed_at]
    assert len(after) >= 5, f"{len(after)} window scores after the kill"
    # the scores after the kill come from the surviving tracker's real observations (kinematics of a seen face)
    assert all(s.kinematics for s in after), [s.withheld for s in after if not s.kinematics]
    ts = [s.ts for s in windows]
    gaps = [b - a for a, b in itertools.pairwise(ts)]
    at_kill = max(b - a for a, b in itertools.pairwise(ts) if b > killed_at)
    print(f"tracker {victim.proc.pid} killed; {took_over} took over; gap across the kill {at_kill:.2f} s, largest "
          f"gap {max(gaps):.2f} s over {len(windows)} window scores; {run.frames_sent} frames sent")  # fmt: skip
    timeline = [(round(s.ts - killed_at, 2), s.last_seq) for s in windows]
    assert max(gaps) < 2.0, f"largest gap between scores {max(gaps):.2f} s (kill at 0; time, last seq): {timeline}"
    assert task_ends(run), "the patient sent no task_end"


async def test_killed_scorer_restarted_loses_no_task_score(faults: FaultStack) -> None:
    async with clinician_and_bus(faults) as (dash, bus):
        spec = PatientSpec(5256, "pfed5", 2.0, reps=4, tasks=("smile",), head_motion=0.0)  # 4 task ends in 14.4 s
        p = await start_patient(faults, dash, spec)

        async def task_scored() -> bool:
            return bool(await scores(bus, p.sid, "task"))

        await until(task_scored, 90, "the first task score")
        (scorer,) = faults.stack.instances("scorer")
        killed_ms = time.time() * 1000
        faults.stack.kill(scorer)

        async def task_end_while_down() -> bool:
            ends = [d for d in await bus.range(WINDOWS, p.sid) if d.message.reason == "task_end"]
            return any(int(d.id.split("-")[0]) > killed_ms for d in ends)

        await until(task_end_while_down, 60, "a task end published while the scorer is down")
        await asyncio.to_thread(faults.stack.add, "scorer")  # the patient's sender runs on this loop meanwhile
        run = await asyncio.wait_for(p.task, 120)
        expected = task_ends(run)
        assert len(expected) == 4, expected

        async def all_stored() -> list[tuple[str, int]] | None:
            got = await stored_task_scores(faults, p.session_id)
            return got if len(got) >= len(expected) else None

        got = await until(all_stored, 60, f"{len(expected)} task scores in the database")
        in_stream = Counter((s.task, s.rep) for s in await scores(bus, p.sid, "task"))
        task_keys = [(s.key, round(s.ts - killed_ms / 1000, 2)) for s in await scores(bus, p.sid, "task")]
        task_windows = [(d.id, d.message.task, d.message.rep, d.message.first_seq, d.message.last_seq)
                        for d in await bus.range(WINDOWS, p.sid) if d.message.reason == "task_end"]  # fmt: skip
    assert Counter(got) == Counter(expected), (got, expected, task_windows, task_keys)  # exactly one per task end
    print(
        f"scorer killed and restarted: {len(got)} task scores stored for {len(expected)} task ends; "
        f"task scores in scores:{{sid}}: {dict(in_stream)}"
    )


async def test_restarted_dashboard_page_resumes_and_gets_missed_task_scores(faults: FaultStack, tmp_path: Path) -> None:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.async_api import async_playwright

    base = faults.demo.dashboard_url
    async with clinician_and_bus(faults) as (dash, bus), async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            # bypass_csp only lets the test's own wait_for_function expressions run; the pages need no eval
            context = await browser.new_context(viewport={"width": 1360, "height": 1000}, bypass_csp=True)
            page = await context.new_page()
            await page.goto(base + "/")
            await page.fill("#username", USERNAME)
            await page.fill("#password", faults.demo.password)
            await page.click("#login")
            await page.wait_for_selector("#add-patient")
            spec = PatientSpec(5269, "pfed5", 2.0, reps=4, tasks=("smile",), head_motion=0.0)  # 4 task ends in 14.0 s
            p = await start_patient(faults, dash, spec)
            await page.goto(f"{base}/sessions/{p.session_id}")
            socket = page.locator("#socket")
            await page.wait_for_selector("#task-smile-0", timeout=90_000)  # the first task score, live
            assert await socket.text_content() == "live connection up"
            (board,) = faults.stack.instances("dashboard")
            killed_at = time.time()
            faults.stack.kill(board)
            await page.wait_for_function("document.getElementById('socket').textContent === 'reconnecting…'",
                                         timeout=15_000)  # fmt: skip

            async def written_while_down() -> list[Score]:
                return [s for s in await scores(bus, p.sid, "task") if s.ts > killed_at]

            missed = await until(written_while_down, 60, "a task score written while the dashboard is down")
            await asyncio.to_thread(faults.stack.add, "dashboard")  # the patient keeps streaming meanwhile
            await page.wait_for_function("document.getElementById('socket').textContent === 'live connection up'",
                                         timeout=30_000)  # fmt: skip
            for s in missed:  # they reach the page that was open all along
                await page.wait_for_selector(f"#task-{s.task}-{s.rep}", timeout=30_000)
            await page.screenshot(path=str(tmp_path / "session-after-dashboard-restart.png"))
            run = await asyncio.wait_for(p.task, 120)
            expected = task_ends(run)

            async def all_stored() -> list[tuple[str, int]] | None:
                got = await stored_task_scores(faults, p.session_id)
                return got if len(got) >= len(expected) else None

            got = await until(all_stored, 60, f"{len(expected)} task scores in the database")
            for task, rep in expected:
                await page.wait_for_selector(f"#task-{task}-{rep}", timeout=30_000)
        finally:
            await browser.close()
    assert Counter(got) == Counter(expected), (got, expected)
    print(
        f"dashboard killed and restarted; {len(missed)} task scores written while it was down reached the page; "
        f"{len(got)} stored for {len(expected)} task ends"
    )


async def ended_session(dash: ClinicianClient, session_id: int) -> dict[str, Any] | None:
    detail: dict[str, Any] = await dash.json("GET", f"/api/sessions/{session_id}")
    return detail if detail["session"]["state"] == "ended" else None


async def test_redis_restart_mid_session_ends_it_with_a_clear_reason(faults: FaultStack, tmp_path: Path) -> None:
    """Redis restarts (same port, no persistence: every session's state is gone). The decided behaviour
    (common.session_store): the session does not resume; its ingest ends the call and announces the end with reason
    ``state_lost``, which the dashboard records and shows. Every service reconnects (none exits, each publishes
    health again), nothing is half-written in the database, nothing of the session is left in Redis, and a new
    session on the restarted Redis is tracked and scored."""
    async with clinician_and_bus(faults) as (dash, bus):
        spec = PatientSpec(5404, "pfed5", 2.0, reps=3, tasks=("smile",), head_motion=0.0)
        p = await start_patient(faults, dash, spec)

        async def task_scored() -> bool:
            return bool(await scores(bus, p.sid, "task"))

        await until(task_scored, 90, "the first task score")
        pids = {c.proc.pid for c in faults.stack.children}
        restarted_at = time.time()
        faults.stack.restart_redis()
        with pytest.raises(PatientError):  # the call ends: the ingest closes it
            await asyncio.wait_for(p.task, 60)

        detail = await until(lambda: ended_session(dash, p.session_id), 30, "the dashboard records the session's end")
        assert detail["session"]["end_reason"] == STATE_LOST, detail["session"]
        assert len(detail["task_scores"]) >= 1  # what was stored before the restart stays

        async def healthy_again() -> bool:
            seen = {(d.message.service, d.message.instance) for d in await bus.range(HEALTH)
                    if d.message.ts > restarted_at}  # fmt: skip
            return Counter(service for service, _ in seen) == Counter(c.spec.name for c in faults.stack.children)

        await until(healthy_again, 30, "every service publishes health again")
        assert {c.proc.pid for c in faults.stack.children} == pids, "a service restarted"
        assert all(c.proc.poll() is None for c in faults.stack.children)

        async def nothing_of_the_session_left() -> bool:
            keys = await bus.run("keys", lambda r: r.keys(f"*{p.sid}*"))
            return not keys

        await until(nothing_of_the_session_left, 30, "no key of the lost session in Redis")
        # the services work on the restarted Redis: a new session is tracked and scored to its task scores
        again = await start_patient(faults, dash, PatientSpec(5405, "pfed5", 2.0, reps=1, tasks=("smile",),
                                                              head_motion=0.0))  # fmt: skip
        run = await asyncio.wait_for(again.task, 120)

        async def stored() -> list[tuple[str, int]] | None:
            got = await stored_task_scores(faults, again.session_id)
            return got if len(got) >= len(task_ends(run)) else None

        assert Counter(await until(stored, 60, "the new session's task scores")) == Counter(task_ends(run))
        await until(lambda: ended_session(dash, again.session_id), 30, "the new session ends on the dashboard")
    db = faults.database()
    try:
        with db.session() as s:  # nothing half-written: no task score without its session, no session left live
            orphans = s.scalars(select(TaskScore).where(TaskScore.session_id.not_in(select(DbSession.id)))).all()
            live = s.scalars(select(DbSession).where(DbSession.state == "live")).all()
        assert not orphans and not live, (orphans, [(x.sid, x.state) for x in live])
    finally:
        db.close()
    print(
        f"Redis restarted: the session ended ({detail['session']['end_reason']}) on the dashboard; services "
        "reconnected; a new session was scored"
    )
