"""A patient's history through the API (baseline, trend, worsening flag, history CSV) and the health board."""

from __future__ import annotations

import csv
import io
import time
import uuid
from pathlib import Path

import pytest

from common.bus import Bus
from common.messages import Health
from common.streams import HEALTH
from dashboard.db import Database
from dashboard.health import HealthBoard
from dashboard.hub import Hub
from dashboard.store import write_task_scores
from dashboard.tables import Session
from infra.redis_server import RedisServer
from tests.dashboard_kit import http_client, login, make_accounts, running, score, settings_for, sqlite_url

pytestmark = pytest.mark.integration

DAY = 86_400.0


def _sessions(url: str, clinic_id: int, patient_id: int, values: list[float]) -> None:
    """One ended session per value, a week apart, each with two smile task scores around the value."""
    db = Database(url)
    start = time.time() - len(values) * 7 * DAY
    for i, v in enumerate(values):
        sid = f"h{patient_id}x{i}"
        with db.session() as s:
            s.add(
                Session(
                    sid=sid,
                    patient_id=patient_id,
                    clinic_id=clinic_id,
                    protocol="pfed5",
                    consent_live_scoring=True,
                    consent_recording=False,
                    consent_research=False,
                    state="ended",
                    created_ts=start + i * 7 * DAY,
                    started_ts=0.0,
                    ended_ts=0.0,
                    end_reason="completed",
                    join_url="",
                    join_expires_ts=0.0,
                    note="",
                )
            )
        with db.session() as s:
            pairs = [
                (f"{i}-{r}", score(sid, kind="task", task="smile", rep=r, last_seq=100 * r, value=v + d))
                for r, d in enumerate((-0.1, 0.1))
            ]
            write_task_scores(s, pairs)
    db.close()


async def test_longitudinal_flags_a_worsening_patient(redis_server: RedisServer, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    ids = make_accounts(url)
    async with running(settings_for(redis_server.url, url), background=False) as (app, _s), http_client(app) as http:
        await login(http, "alice")
        worse = (await http.post("/api/patients", json={"display_name": "W", "mrn": "W1"})).json()["id"]
        steady = (await http.post("/api/patients", json={"display_name": "S", "mrn": "S1"})).json()["id"]
        _sessions(url, ids.clinic_a, worse, [1.0, 1.1, 0.9, 2.2, 2.6])
        _sessions(url, ids.clinic_a, steady, [1.0, 1.1, 0.9, 1.0, 1.05])
        q = "?protocol=pfed5&task=smile"
        w = (await http.get(f"/api/patients/{worse}/longitudinal{q}")).json()
        s = (await http.get(f"/api/patients/{steady}/longitudinal{q}")).json()
        assert w["values"] == pytest.approx([1.0, 1.1, 0.9, 2.2, 2.6])  # one value per session (mean of its reps)
        assert w["baseline"]["n"] == 3 and w["flag"]["worse"] and w["trend"]["slope_per_30d"] > 0
        assert not s["flag"]["worse"]
        # a baseline of the first session only is narrower, a chosen period works, a bad one is refused
        one = (await http.get(f"/api/patients/{steady}/longitudinal{q}&first_n=1")).json()
        assert one["baseline"]["n"] == 1
        first = time.strftime("%Y-%m-%d", time.gmtime(w["ts"][3]))
        last = time.strftime("%Y-%m-%d", time.gmtime(w["ts"][4]))
        late = (await http.get(f"/api/patients/{worse}/longitudinal{q}&start={first}&end={last}")).json()
        assert late["baseline"]["source"] == "period" and late["baseline"]["n"] == 2
        bad = await http.get(f"/api/patients/{worse}/longitudinal{q}&start={last}&end={first}")
        assert bad.status_code == 422
        assert (await http.get(f"/api/patients/{worse}/longitudinal{q}&start=2026-13-01&end={last}")).status_code == 422
        assert (await http.get(f"/api/patients/{worse}/longitudinal?protocol=pfed5&task=blow")).status_code == 400
        history = await http.get(f"/api/patients/{worse}/history.csv")
        rows = list(csv.DictReader(io.StringIO(history.text)))
        assert len(rows) == 10 and {r["task"] for r in rows} == {"smile"}
        assert history.headers["content-disposition"].startswith("attachment")
        detail = (await http.get(f"/api/patients/{worse}")).json()
        assert detail["tasks"] == [{"protocol": "pfed5", "task": "smile"}] and len(detail["sessions"]) == 5


async def test_health_board_keeps_the_latest_per_instance(redis_server: RedisServer, bus: Bus) -> None:
    now = time.time()
    t1, i1, d1 = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("t1", "i1", "d1"))
    for ts, lag in ((now - 1, 5.0), (now, 7.0)):
        await bus.publish(
            HEALTH,
            Health(
                service="tracker",
                instance=t1,
                ts=ts,
                started_ts=now - 10,
                counters={"frames_dropped": 3},
                gauges={"lag_ms": lag},
            ),
        )
    await bus.publish(HEALTH, Health(service="ingest", instance=i1, ts=now - 60, started_ts=now - 100))
    hub = Hub(bus)
    board = HealthBoard(bus, hub, instance=d1, interval_s=1.0, own=lambda: ({"ws_dropped": 2.0}, {"ws_clients": 1.0}))
    await board.publish_own()
    await board.refresh()
    table = {(r["service"], r["instance"]): r for r in board.table()}
    assert table[("tracker", t1)]["gauges"]["lag_ms"] == 7.0 and not table[("tracker", t1)]["stale"]
    assert table[("ingest", i1)]["stale"]  # silent for a minute
    assert table[("dashboard", d1)]["counters"]["ws_dropped"] == 2.0
