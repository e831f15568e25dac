"""A patient whose tab closes mid-session on the embedded stack (``feqa demo``'s processes): the phantom's WebRTC
connection drops without the page's hangup request. The session must end with a recorded reason (in Redis and on
the dashboard), and every resource be freed: the ingest's peer (its health shows no live session), the session's
frames and crops, its page key (no page can drive it again), its join link, its place in the live set, the tracker's
and scorer's leases; what stays is only what the retention keeps (the hash, events, windows, scores)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from common.bus import Bus
from common.health import latest_health
from common.streams import CROPS, FRAMES, JOIN, JOIN_LINKS, LIVE, OBS, PAGE_KEY, lease_spec, session_key
from infra.demo import USERNAME, Demo, DemoOptions
from infra.demo_dashboard import ClinicianClient
from infra.demo_patient import run_patient
from infra.settings import StackSettings
from ingest.tokens import digest
from phantom.spec import PatientSpec
from tests.dashboard_kit import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


async def _until(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {what}")


async def test_closed_patient_tab_ends_the_session_and_frees_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ingest notices the dropped connection after 4 s without frames (default 10 s) or a 4 s resume grace
    # (default 15 s): the same end, sooner. Frames keep coming every 0.1 s until the tab closes.
    monkeypatch.setenv("FEQA_INGEST_IDLE_TIMEOUT_S", "4")
    monkeypatch.setenv("FEQA_INGEST_RESUME_GRACE_S", "4")
    settings = StackSettings(data_dir=tmp_path / "feqa", ingest_port=free_port(), dashboard_port=free_port())
    demo = Demo(DemoOptions(models_root=tmp_path / "models"), settings)
    demo.start(tmp_path / "models" / "demo")  # no model: kinematics only, which is all this test needs
    assert demo.stack is not None and demo.stack.redis is not None
    r = aioredis.from_url(demo.stack.redis.url, decode_responses=True)
    bus = await Bus.connect(demo.stack.redis.url, name="test-faults-patient")
    try:
        async with ClinicianClient(demo.dashboard_url) as dash:
            await dash.login(USERNAME, demo.password)
            pid = await dash.patient("Tab closer", "FAULT-1", "synthetic")
            created = await dash.start_session(pid, "pfed5")
            token = str(created["join_url"]).rsplit("/", 1)[-1]
            spec = PatientSpec(4242, "pfed5", 2.0, reps=3, head_motion=0.0)
            patient = asyncio.create_task(run_patient(demo.ingest_url, token, spec))
            sid = str(created["sid"])

            async def observed() -> bool:
                return int(await r.xlen(OBS.key(sid))) >= 10 and bool(await r.exists(CROPS.key(sid)))

            await _until(observed, 60, "observations and crops of the live session")
            held = [FRAMES.key(sid), lease_spec("tracker").key(sid), PAGE_KEY.key(sid), JOIN.key(digest(token)),
                    JOIN_LINKS.key(sid)]  # fmt: skip
            assert all([await r.exists(k) for k in held]), {k: await r.exists(k) for k in held}
            assert await r.sismember(LIVE.key(), sid)

            async def ingest_sessions() -> float:
                return sum(h.gauges.get("sessions", 0.0) for (service, _), h in (await latest_health(bus)).items()
                           if service == "ingest")  # fmt: skip

            async def peer_up() -> bool:
                return await ingest_sessions() == 1.0

            await _until(peer_up, 10, "the ingest's health shows the live peer")
            t_close = time.monotonic()
            patient.cancel()  # the tab closes: the connection drops, no hangup request is sent
            await asyncio.gather(patient, return_exceptions=True)

            async def ended() -> bool:
                return await r.hget(session_key(sid), "state") == "ended"

            await _until(ended, 30, "the session ended")
            reason = await r.hget(session_key(sid), "end_reason")
            assert reason in ("hangup", "idle_timeout"), reason

            leases = [lease_spec(role).key(sid) for role in ("ingest", "tracker", "scorer")]
            freed_keys = [FRAMES.key(sid), CROPS.key(sid), *leases, PAGE_KEY.key(sid), JOIN.key(digest(token)),
                          JOIN_LINKS.key(sid)]  # fmt: skip

            async def freed() -> bool:
                return not any([await r.exists(k) for k in freed_keys]) and not await r.sismember(LIVE.key(), sid)

            await _until(freed, 30, "frames, crops, leases, page key, join link and live listing freed")

            async def peer_gone() -> bool:  # health is published every 2 s
                return await ingest_sessions() == 0.0

            await _until(peer_gone, 10, "the ingest's peer closed (its health shows no live session)")
            print(f"ended ({reason}) and freed {time.monotonic() - t_close:.1f} s after the tab closed")

            async def dashboard_ended() -> bool:
                detail = await dash.json("GET", f"/api/sessions/{created['id']}")
                return bool(detail["session"]["state"] == "ended")

            await _until(dashboard_ended, 30, "the dashboard shows the session ended")
            # the link is spent: joining again is refused with a clear status
            async with ClinicianClient(demo.ingest_url) as again:
                res = await again.http.post(f"/api/join/{token}", json={"consent": True})
                assert res.status_code == 404 and "unknown join link" in res.json()["detail"], res.text
    finally:
        await bus.close()
        await r.aclose()
        demo.stop()
