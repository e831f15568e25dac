"""The README's "First session" walk-through, executed: its commands run as written (``.venv/bin/feqa`` is this
environment's feqa), step 3 is a real headless Chromium opening the printed link with a phantom clip as its
camera, and step 4's watch must report the frames the stack's own tracker observed until the session ended.

Everything runs in a private network namespace with only ``lo`` (tests.browser_kit); the scenario is this file run
as a script, from the checkout's root as the README's commands are. The stack's data folder is a temporary one and
the protocol is shortened with the ingest's pacing settings: the only changes to the stack.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser_kit import ROOT, run_in_namespace

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow, pytest.mark.beside]


def walkthrough() -> list[str]:
    """The commands of the README's "First session" block (comment lines are the browser step)."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## First session\s+```bash\n(.+?)\n```", readme, re.S)
    assert block is not None, "the README lost its First session block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines()]


def test_the_readme_first_session_works(tmp_path: Path) -> None:
    steps = walkthrough()
    assert steps[0] == ".venv/bin/feqa up" and steps[1].startswith(".venv/bin/feqa ingest new-session")
    assert steps[2].startswith("# 3. open the printed link") and steps[3] == ".venv/bin/feqa watch SID"
    result, log_tail = run_in_namespace(Path(__file__), tmp_path / "result.json", timeout=280)
    assert "feqa is up" in result["up"] and "ingest (patient links)" in result["up"], result["up"]
    assert "/join/" in result["new_session"] and result["sid"], result["new_session"]
    assert result["phase"] == "end", (result, log_tail)
    watch = result["watch"]
    assert f"session {result['sid']} ended (completed)" in watch, watch
    per_second = [(int(n), int(f)) for n, f in re.findall(r"(\d+) frames +(\d+) with a face", watch)]
    assert sum(n for n, _ in per_second) >= 30, watch  # the stack's tracker observed the frames the browser sent
    if (ROOT / "models" / "mediapipe").is_dir():  # with the default landmarker's models (infra/setup.sh)
        # the real landmarker found the phantom's face (frames that reached a busy tracker late count as stale)
        assert sum(f for _, f in per_second) >= 20, watch
    assert result["watch_code"] == 0 and result["up_code"] == 0, result


# --------------------------------------------------------------------------------------------- child process


def _scenario(out: Path, work: Path) -> None:
    import asyncio

    from infra.redis_server import free_port
    from tests.browser_kit import CHROMIUM, camera_flags, write_clip

    feqa = str(Path(sys.executable).with_name("feqa"))
    steps = [s.replace(".venv/bin/feqa", feqa) for s in walkthrough()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEQA_")}
    env.update(FEQA_STACK_DATA_DIR=str(work / ".feqa"), FEQA_STACK_INGEST_PORT=str(free_port()),
               FEQA_STACK_DASHBOARD_PORT=str(free_port()),
               FEQA_INGEST_ICE_HOST_ADDRESSES='["127.0.0.1"]', FEQA_INGEST_COUNTDOWN_S="0.3",
               FEQA_INGEST_HOLD_S="1.0", FEQA_INGEST_REPS="1", FEQA_INGEST_REST_S="0.2")  # fmt: skip
    clip = write_clip(work / "camera.y4m", 30)
    result: dict[str, Any] = {}
    up = subprocess.Popen(steps[0].split(), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True)  # fmt: skip
    up_lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and up.stdout is not None:
            line = up.stdout.readline()
            if not line:
                break
            up_lines.append(line)
            if "feqa is up" in line:
                break
        result["up"] = "".join(up_lines)
        made = subprocess.run(steps[1].split(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        result["new_session"] = made.stdout + made.stderr
        link = re.search(r"http://\S+/join/\S+", made.stdout)
        sid = re.search(r"feqa watch (\S+)", made.stdout)
        result["sid"] = sid.group(1) if sid else ""
        if link is None or sid is None:
            out.write_text(json.dumps(result))
            return
        watch = subprocess.Popen(steps[3].replace("SID", sid.group(1)).split(), cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip

        async def browse() -> str:
            from playwright.async_api import async_playwright

            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=camera_flags(clip))
                page = await browser.new_page(viewport={"width": 1366, "height": 768})
                await page.goto(link.group(0))
                await page.wait_for_selector("body[data-phase=consent]", timeout=30_000)
                await page.check("#consent")
                await page.click("#start")
                await page.wait_for_selector("body[data-phase=end], body[data-phase=error]", timeout=120_000)
                phase = str(await page.evaluate("document.body.dataset.phase"))
                result["page_error"] = await page.text_content("#error-text")
                await browser.close()
                return phase

        result["phase"] = asyncio.run(browse())
        watched, _ = watch.communicate(timeout=60)
        result["watch"], result["watch_code"] = watched, watch.returncode
    finally:
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=60)
        result["up"] = result.get("up", "") + rest
        result["up_code"] = up.returncode
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="feqa-first-") as tmp:
        _scenario(Path(sys.argv[1]), Path(tmp))
