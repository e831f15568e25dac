"""Starting and ending sessions through a real ingest app on loopback with a service credential."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from common.bus import Bus
from common.messages import Consent
from common.session_store import SessionStore
from common.settings import CommonSettings
from infra.redis_server import RedisServer
from ingest.settings import IngestSettings
from tests.dashboard_kit import free_port, http_client, login, make_accounts, running, settings_for, sqlite_url
from tests.integration.test_ingest_webrtc import serve as serve_ingest

pytestmark = pytest.mark.integration

KEY = "service-key-for-tests-0123456789"


async def test_start_show_and_end_a_session(redis_server: RedisServer, tmp_path: Path, bus: Bus) -> None:
    url = sqlite_url(tmp_path)
    make_accounts(url)
    store = SessionStore(bus)
    key_file = tmp_path / "ingest.key"
    key_file.write_text(KEY + "\n")
    ingest = IngestSettings(
        common=CommonSettings(redis_url=redis_server.url),
        port=free_port(),
        api_key=KEY,
        ice_host_addresses=["127.0.0.1"],
    )
    async with serve_ingest(ingest) as ingest_url:
        settings = settings_for(redis_server.url, url, ingest_url=ingest_url, ingest_api_key_file=key_file)
        async with running(settings) as (app, state), http_client(app) as http:
            await login(http, "alice")
            pid = (await http.post("/api/patients", json={"display_name": "Ann", "mrn": "M1"})).json()["id"]
            patient = (await http.get(f"/api/patients/{pid}")).json()["patient"]
            bad = await http.post(f"/api/patients/{pid}/sessions", json={"protocol": "pfed5", "consent": {"x": True}})
            assert bad.status_code == 422 and "unknown consent" in bad.text
            bad = await http.post(f"/api/patients/{pid}/sessions", json={"protocol": "nope"})
            assert bad.status_code == 400 and "unknown protocol" in bad.text
            res = await http.post(
                f"/api/patients/{pid}/sessions",
                json={"protocol": "palsy", "consent": {"live_scoring": True, "research": True}},
            )
            assert res.status_code == 201, res.text
            created = res.json()
            assert created["join_url"].startswith(ingest_url + "/join/") and created["state"] == "created"
            info = await store.require(created["sid"])
            # the pipeline sees the pseudonymous ref, never the name
            assert info.patient_id == patient["ref"] and info.protocol == "palsy"
            assert info.consent == Consent(live_scoring=True, recording=False, research=True)
            qr = await http.get(f"/api/sessions/{created['id']}/qr.svg")
            assert qr.status_code == 200 and qr.text.lstrip().startswith("<svg")
            detail = (await http.get(f"/api/sessions/{created['id']}")).json()
            assert detail["session"]["join_url"] == created["join_url"]
            assert detail["session"]["consent"] == {"live_scoring": True, "recording": False, "research": True}
            live = (await http.get("/api/sessions?which=live")).json()
            assert [s["id"] for s in live] == [created["id"]]
            ended = await http.post(f"/api/sessions/{created['id']}/end", json={})
            assert ended.status_code == 200 and ended.json()["state"] == "ended"
            deadline = time.monotonic() + 10
            while not (await store.require(created["sid"])).ended and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert (await store.require(created["sid"])).end_reason == "clinician"
            assert (await http.get(f"/api/sessions/{created['id']}/qr.svg")).status_code == 410
            assert (await http.get("/api/sessions?which=past")).json()[0]["id"] == created["id"]
            assert state.ingest.base_url == ingest_url
        # a wrong key: the clinician is told what to fix, and nothing is stored
        wrong = tmp_path / "wrong.key"
        wrong.write_text("not-the-key")
        settings = settings_for(redis_server.url, url, ingest_url=ingest_url, ingest_api_key_file=wrong)
        async with running(settings, background=False) as (app, _state), http_client(app) as http:
            await login(http, "alice")
            res = await http.post(f"/api/patients/{pid}/sessions", json={"protocol": "pfed5"})
            assert res.status_code == 502 and "FEQA_DASHBOARD_INGEST_API_KEY" in res.text
            assert len((await http.get("/api/sessions")).json()) == 1
    # the ingest is gone: 503 with where it was looked for
    settings = settings_for(redis_server.url, url, ingest_url=f"http://127.0.0.1:{free_port()}", ingest_api_key=KEY)
    async with running(settings, background=False) as (app, _state), http_client(app) as http:
        await login(http, "alice")
        res = await http.post(f"/api/patients/{pid}/sessions", json={"protocol": "pfed5"})
        assert res.status_code == 503 and "did not answer" in res.text
