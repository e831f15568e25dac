"""``feqa demo`` end to end: the command starts the embedded stack and a phantom patient streaming over WebRTC
through the ingest's public path, the tracker's real MediaPipe landmarker, the scorer serving the demo's five
committed models (infra/demo_artifacts: used as they are, no training, since their fingerprint matches), and the
dashboard; its printed login works (and a wrong password does not), scores reach a logged-in dashboard's websocket,
and every task of the session's protocol is scored, stored and served by the dashboard's API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from dashboard.db import Database
from dashboard.tables import TaskScore
from infra.demo_dashboard import ClinicianClient, DashboardError
from tests.demo_kit import MEDIAPIPE, demo_process, watch_scores

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.beside, pytest.mark.timeout(600)]

# One repetition of each task: every pfed5 task is still scored by its committed model, in 49 s of the phantom's
# protocol instead of 74 s with the demo's default two (the phantom then performs three of each task so that two
# 48-frame windows fit). Several repetitions of one task, numbered and scored apart through the same ingest, scorer
# and dashboard, are the browser end-to-end test's (two of each task, on the page and in the database), and the
# demo patient's own numbering of them is tests/unit/test_demo.py's.
REPS = 1


@pytest.mark.skipif(not (MEDIAPIPE / "face_landmark.onnx").is_file(), reason="no MediaPipe models (infra/setup.sh)")
async def test_feqa_demo_scores_reach_the_dashboard_and_its_login_works(tmp_path: Path) -> None:
    # an empty models root: were the committed models not used, the demo would train (and this test time out)
    args = ["--patients", "1", "--rounds", "1", "--reps", str(REPS), "--models-root", str(tmp_path / "models")]
    with demo_process(args, tmp_path / "feqa") as demo:
        demo.line(r"^demo models: the committed ones in \S+ \(their fingerprint matches", 60)
        url = demo.line(r"^  dashboard +(http://\S+)/$", 120).group(1)
        user, password = demo.line(r"^  login +user (\S+) +password (\S+)$", 10).groups()
        assert url == f"http://127.0.0.1:{demo.dashboard_port}"
        assert len(password) >= 16
        async with ClinicianClient(url) as wrong:
            with pytest.raises(DashboardError, match="refused"):
                await wrong.login(user, password + "x")
        async with ClinicianClient(url) as dash:
            await dash.login(user, password)
            deadline = time.monotonic() + 60
            sessions: list[dict[str, object]] = []
            while not sessions and time.monotonic() < deadline:
                sessions = await dash.json("GET", "/api/sessions")
            assert len(sessions) == 1, sessions
            session_id = int(str(sessions[0]["id"]))
            live = await watch_scores(url, dash.cookie_header, session_id, want=3, timeout_s=120)
            assert len(live) >= 3, live
            assert all(s["protocol"] == "pfed5" for s in live)
            # the round is over: one line per session
            summary = demo.line(r"^  session \d+ .* task scores:", 240).string
            detail = await dash.json("GET", f"/api/sessions/{session_id}")
        demo.line(r"^stopped$", 60)
        assert demo.proc.wait(30) == 0, "\n".join(demo.seen[-30:])
    stored = detail["task_scores"]
    tasks = ("rest", "smile", "frown", "squeeze_eyes", "clench_teeth")  # the whole pfed5 protocol, REPS reps each
    assert [(s["task"], s["rep"]) for s in stored] == [(t, r) for t in tasks for r in range(REPS)], summary
    scored = [s for s in stored if s["score"] is not None]
    assert {s["task"] for s in scored} == set(tasks), summary  # every task has its committed model
    for s in scored:
        assert 0.0 <= s["score"] <= 4.0 and s["model"] and s["withheld"] == "", s
    assert detail["session"]["state"] == "ended" and detail["session"]["end_reason"] == "completed"
    # the same rows in the database file the dashboard wrote
    db = Database(f"sqlite:///{tmp_path / 'feqa' / 'dashboard.sqlite'}")
    try:
        with db.session() as s:
            rows = s.scalars(select(TaskScore).where(TaskScore.session_id == session_id)).all()
            in_db = {(r.task, r.rep): (r.score, r.withheld) for r in rows}
            assert in_db == {(x["task"], x["rep"]): (x["score"], x["withheld"]) for x in stored}
    finally:
        db.close()
