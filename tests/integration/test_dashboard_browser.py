"""A real headless Chromium uses the dashboard: logs in, adds a patient, starts a session (against a real ingest on
loopback), watches the live view fed by Score entries published on a real Redis until the plot has points, sees the
stale state when they stop, rates a task, and downloads the PDF report (whose first page is rendered to an image).

Screenshots and the rendered PDF page go to the test's temporary folder, and also to ``FEQA_TEST_ARTIFACTS`` when
that is set (to look at them).
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import time
from pathlib import Path

import pytest

from common.bus import Bus
from common.liveness import IngestLiveness
from common.messages import Event
from common.session_store import SessionStore
from common.settings import CommonSettings
from common.streams import EVENTS
from infra.redis_server import RedisServer
from ingest.settings import IngestSettings
from tests.dashboard_kit import PASSWORD, free_port, make_accounts, publish_scores, running, score, serve, settings_for
from tests.dashboard_kit import sqlite_url as sqlite_url_for
from tests.integration.test_ingest_webrtc import serve as serve_ingest

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
KEY = "browser-test-service-key-0123456789"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _keep(path: Path) -> None:
    out = os.environ.get("FEQA_TEST_ARTIFACTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(out) / path.name)


async def test_clinician_runs_a_session_in_chromium(redis_server: RedisServer, tmp_path: Path, bus: Bus) -> None:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.async_api import async_playwright

    db_url = sqlite_url_for(tmp_path)
    make_accounts(db_url)
    ingest = IngestSettings(
        common=CommonSettings(redis_url=redis_server.url),
        port=free_port(),
        api_key=KEY,
        ice_host_addresses=["127.0.0.1"],
    )
    async with serve_ingest(ingest) as ingest_url:
        settings = settings_for(redis_server.url, db_url, ingest_url=ingest_url, ingest_api_key=KEY, stale_after_s=2.0)
        async with running(settings) as (app, state), serve(app, free_port()) as base, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            # bypass_csp only lets the test's own wait_for_function expressions run; the pages need no eval
            context = await browser.new_context(
                viewport={"width": 1360, "height": 1000}, accept_downloads=True, bypass_csp=True
            )
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

            await page.goto(base + "/")
            assert "/login" in page.url
            await page.fill("#username", "alice")
            await page.fill("#password", PASSWORD)
            await page.click("#login")
            await page.wait_for_selector("#add-patient")
            cookies = {c["name"]: c for c in await context.cookies()}
            assert cookies["feqa_session"]["httpOnly"] and cookies["feqa_session"]["secure"]

            await page.fill("input[name=display_name]", "Ann Example")
            await page.fill("input[name=mrn]", "MRN-1")
            await page.fill("input[name=birth_year]", "1951")
            await page.click("#add-patient button[type=submit]")
            await page.wait_for_selector("#start-session")
            await page.select_option("#protocol", "pfed5")
            await page.check("#consent-research")
            await page.click("#start")
            await page.wait_for_selector("#join:not(.hidden)", timeout=15_000)
            join_url = await page.text_content("#join-url")
            assert join_url and join_url.startswith(ingest_url + "/join/")
            await page.wait_for_function("document.getElementById('qr').naturalWidth > 0")
            shot = tmp_path / "dashboard-start.png"
            await page.screenshot(path=str(shot), full_page=True)
            _keep(shot)

            await page.click("#watch")
            await page.wait_for_selector("#plot .uplot")
            session_id = int(page.url.rsplit("/", 1)[1])
            with state.db.session() as s:
                from dashboard.tables import Session

                sid = s.get(Session, session_id).sid  # type: ignore[union-attr]
            # the patient joins (as the ingest records it), a task starts, scores flow, the task's score arrives
            await IngestLiveness(bus, "test-ingest", 120_000).claim(sid)
            await SessionStore(bus).start(sid, "pfed5")
            await bus.publish(EVENTS, Event(sid=sid, type="task_start", ts=time.time(), protocol="pfed5", task="smile"))
            t0 = time.time()
            for i in range(40):
                value = 1.6 + 0.6 * math.sin(i / 5) if i % 9 else None  # some windows withheld by the gate
                kin = {"rom_mouth": 0.3 + 0.01 * i, "rom_brow": 0.2, "asym_mouth": 0.08, "blink_rate": 14.0 + (i % 3)}
                await publish_scores(bus, [score(sid, last_seq=8 * i, value=value, ts=t0 + i * 0.1, kinematics=kin)])
                await asyncio.sleep(0.03)
            await page.wait_for_function("Number(document.body.dataset.points) >= 30", timeout=30_000)
            assert await page.evaluate("window.feqaPlot.data[0].length") >= 30
            assert await page.text_content("#task") == "smile"
            assert await page.get_attribute("body", "data-stale") == "0"
            await publish_scores(bus, [score(sid, kind="task", task="smile", last_seq=400, value=2.2)])
            await page.wait_for_selector("#task-smile-0")
            shot = tmp_path / "dashboard-live.png"
            await page.screenshot(path=str(shot), full_page=True)
            _keep(shot)

            # scores stop: the page says the data is stale
            await page.wait_for_selector("body[data-stale='1']", timeout=10_000)
            assert await page.is_visible("#stalebar")
            shot = tmp_path / "dashboard-stale.png"
            await page.screenshot(path=str(shot))
            _keep(shot)

            # the clinician's rating beside the model's score
            await page.select_option("#task-smile-0 select[name=value]", "3")
            await page.fill("#task-smile-0 input[name=note]", "less lower-face movement than the model says")
            await page.click("#task-smile-0 button[type=submit]")
            await page.wait_for_function(
                "document.querySelector('#task-smile-0 .rating').textContent.startsWith('3.0')"
            )

            async with page.expect_download() as download_info:
                await page.click("#pdf")
            download = await download_info.value
            pdf_path = tmp_path / "report.pdf"
            await download.save_as(str(pdf_path))

            await page.goto(base + "/console")
            await page.wait_for_selector(f".tile[data-sid='{sid}']")
            shot = tmp_path / "dashboard-console.png"
            await page.screenshot(path=str(shot), full_page=True)
            _keep(shot)
            await browser.close()
            assert not [e for e in errors if "favicon" not in e], errors

    pdf = pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF")
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    text = doc[0].get_textpage().get_text_range()
    for expected in ("Session report", "Ann Example", "smile", "less lower-face movement", "trampformer:pfed5/smile"):
        assert expected in text, expected
    assert "research yes" in text and "recording no" in text
    image = doc[0].render(scale=1.5).to_pil()
    png = tmp_path / "report-page1.png"
    image.save(png)
    _keep(png)
    # the page has drawn plots, not only text: many distinct colours
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50
