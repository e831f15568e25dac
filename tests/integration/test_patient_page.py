"""The patient page in a real headless Chromium, beyond the happy path: on a phone, after a reload mid-session,
and when the camera is missing, refused or busy. Screenshots of each land in the test's folder.

Runs in a private network namespace with only ``lo`` (tests.browser_kit); the scenario is this file run as a
script.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from common.tasks import stop_tasks
from tests.browser_kit import run_in_namespace

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.beside]

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def test_phone_layout_reload_resume_and_camera_messages(tmp_path: Path) -> None:
    result, log_tail = run_in_namespace(Path(__file__), tmp_path / "result.json", str(tmp_path), timeout=280)
    phone = result["phone"]
    assert phone["start"]["visible"], phone["start"]  # a phone shows Start (and the consent box) without scrolling
    assert phone["resume_note"] and phone["resume_button"] == "Continue"
    assert phone["phase"] == "end", (phone, log_tail)
    session = phone["session"]
    assert session["state"] == "ended" and session["end_reason"] == "completed"
    # the reload did not end the session: one start, one end, every task finished once, frames numbered on
    events = phone["events"]
    tasks = ["blow", "kiss", "brow", "open", "spread", "bigsmile"]
    assert [e["task"] for e in events if e["type"] == "task_end"] == tasks
    assert [e["type"] for e in events].count("session_end") == 1
    assert phone["announces"] == ["started", "ended"]
    seqs = phone["frame_seqs"]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and len(seqs) > 20
    assert phone["frames_after_reload"] > 5

    camera = result["camera"]
    assert camera["none"]["title"] == "No camera found" and "Connect a camera" in camera["none"]["text"]
    assert camera["refused"]["title"] == "Camera access was refused"
    assert "Allow the camera" in camera["refused"]["text"]
    assert camera["busy"]["title"] == "The camera is busy" and "Another program" in camera["busy"]["text"]
    for case in camera.values():
        assert case["retry_visible"] and "Requested device" not in case["text"]
    for shot in ("phone_consent.png", "phone_task.png", "phone_resume.png", "no_camera.png", "refused.png", "busy.png"):
        assert (tmp_path / shot).stat().st_size > 5_000, shot


# --------------------------------------------------------------------------------------------- child process


async def _camera_case(
    pw: Any, http: Any, flags: list[str], shot: Path, busy: bool = False, browser: Any = None
) -> dict[str, Any]:
    """The page's camera error for a session of its own, in a new Chromium with ``flags`` (or in a new context of
    ``browser``, one already started with those flags, which is closed afterwards)."""
    from tests.browser_kit import CHROMIUM

    created = (await http.post("/api/sessions", json={"patient_id": "cam", "protocol": "pfed5"})).json()
    if browser is None:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
    try:
        page = await (await browser.new_context(viewport={"width": 1366, "height": 768})).new_page()
        if busy:  # what the browser reports when another program holds the camera
            await page.add_init_script(
                "navigator.mediaDevices.getUserMedia = () => "
                "Promise.reject(new DOMException('Could not start video source', 'NotReadableError'));"
            )
        await page.goto(created["join_url"])
        await page.wait_for_selector("body[data-phase=error]", timeout=20_000)
        await page.screenshot(path=str(shot))
        return {
            "title": await page.text_content("#error-title"),
            "text": await page.text_content("#error-text"),
            "retry_visible": await page.is_visible("#retry"),
        }
    finally:
        await browser.close()


async def _scenario(out: Path, shots: Path, work: Path) -> None:
    import httpx
    from playwright.async_api import async_playwright

    from common.bus import Bus
    from common.session_store import SessionStore
    from common.streams import EVENTS, FRAMES, SESSIONS
    from infra.redis_server import RedisServer
    from tests.browser_kit import CHROMIUM, camera_flags, page_settings, start_button_visible, write_clip
    from tests.conftest import SERVICE_HEADERS
    from tests.integration.test_ingest_webrtc import serve

    clip = write_clip(work / "camera.y4m", 30, "neuroface")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    result: dict[str, Any] = {}
    with RedisServer() as redis:
        settings = page_settings(redis.url, port, resume_grace_s=20.0, hold_s=1.0)
        bus = await Bus.connect(redis.url, name="page-test")
        async with serve(settings) as url, httpx.AsyncClient(base_url=url, headers=SERVICE_HEADERS) as http:
            created = (await http.post("/api/sessions", json={"patient_id": "ph1", "protocol": "neuroface"})).json()
            sid = created["sid"]
            seqs: list[int] = []

            async def collect() -> None:
                while True:
                    got = await bus.consume(FRAMES, [sid], "test", count=64, block_ms=200)
                    seqs.extend(d.message.seq for d in got)
                    await bus.ack(got)

            collector = asyncio.ensure_future(collect())
            phone: dict[str, Any] = {}
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=camera_flags(clip))
                page = await (await browser.new_context(**PHONE)).new_page()
                await page.goto(created["join_url"])
                await page.wait_for_selector("body[data-phase=consent]", timeout=20_000)
                await page.wait_for_timeout(500)
                phone["start"] = await start_button_visible(page)
                await page.screenshot(path=str(shots / "phone_consent.png"))
                await page.check("#consent")
                await page.click("#start")
                await page.wait_for_function("() => document.getElementById('step').textContent.startsWith('Step 3')",
                                             timeout=60_000)  # fmt: skip
                await page.screenshot(path=str(shots / "phone_task.png"))
                before = len(seqs)
                await page.reload()  # mid-session: the link opens the same session again
                await page.wait_for_selector("body[data-phase=consent]", timeout=20_000)
                phone["resume_note"] = await page.is_visible("#resume-note")
                phone["resume_button"] = await page.text_content("#start")
                await page.screenshot(path=str(shots / "phone_resume.png"))
                await page.check("#consent")
                await page.click("#start")
                await page.wait_for_selector("body[data-phase=end], body[data-phase=error]", timeout=90_000)
                phone["phase"] = await page.evaluate("document.body.dataset.phase")
                phone["error"] = await page.text_content("#error-text")
                await page.context.close()  # the browser (its camera flags) serves the busy-camera case below
                await asyncio.sleep(0.5)
                await stop_tasks([collector], what="frame collector")
                phone["frames_after_reload"] = len(seqs) - before
                phone["frame_seqs"] = seqs
                phone["session"] = (await SessionStore(bus).require(sid)).as_json()
                phone["events"] = [{"type": d.message.type, "task": d.message.task, "rep": d.message.rep}
                                   for d in await bus.range(EVENTS, sid)]  # fmt: skip
                phone["announces"] = [d.message.state for d in await bus.latest(SESSIONS, None, 500)
                                      if d.message.sid == sid]  # fmt: skip
                result["phone"] = phone

                result["camera"] = {
                    "none": await _camera_case(pw, http, camera_flags(None), shots / "no_camera.png"),
                    "refused": await _camera_case(pw, http, camera_flags(clip, fake_ui=False), shots / "refused.png"),
                    "busy": await _camera_case(
                        pw, http, camera_flags(clip), shots / "busy.png", busy=True, browser=browser
                    ),
                }
        await bus.close()
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="feqa-page-") as tmp:
        asyncio.run(_scenario(Path(sys.argv[1]), Path(sys.argv[2]), Path(tmp)))
