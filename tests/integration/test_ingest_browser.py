"""A real headless Chromium runs a whole protocol from the patient page with a phantom y4m as its camera.

The browser and the server share a private network namespace that has only ``lo`` (``unshare -n``), the server
offers 127.0.0.1 and Chromium allows loopback candidates, so no media leaves the machine. The scenario runs in a
child process inside that namespace (this file run as a script); the test checks what it saw in Redis.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
PROTOCOL = "pfed5"
HOLD_S = 0.8
N_FRAMES = 40


def _namespace_problem() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip is missing"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=20)
    if probe.returncode != 0:
        return f"no private network namespace here (unshare -n: {probe.stderr.decode(errors='replace').strip()})"
    return None


def test_browser_runs_whole_protocol(tmp_path: Path) -> None:
    problem = _namespace_problem()
    if problem:
        pytest.skip(problem)
    out = tmp_path / "result.json"
    cmd = f"ip link set lo up && exec {sys.executable} {Path(__file__).resolve()} {out}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(["unshare", "-n", "sh", "-c", cmd], capture_output=True, timeout=240, env=env)
    log_tail = (proc.stdout + proc.stderr).decode(errors="replace")[-4000:]
    assert proc.returncode == 0, log_tail
    result = json.loads(out.read_text())
    assert result["phase"] == "end", (result, log_tail)

    frames = result["frames"]
    assert len(frames) >= 25, log_tail
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    stamps = [f["capture_ts"] for f in frames]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    # the camera track kept its full resolution (content hint 'detail')
    assert {(f["width"], f["height"]) for f in frames} == {(640, 480)}

    tasks = ["rest", "smile", "frown", "squeeze_eyes", "clench_teeth"]
    events = result["events"]
    task_events = [(e["type"], e["task"]) for e in events if e["type"] in ("task_start", "task_end")]
    assert task_events == [(kind, t) for t in tasks for kind in ("task_start", "task_end")]
    assert events[-1]["type"] == "session_end" and events[-1]["text"] == "completed"
    event_ts = [e["ts"] for e in events]
    assert event_ts == sorted(event_ts)
    # every task window holds frames: the events' frame numbers rise and frames flowed during each hold
    for start, end in zip(events[0:-1:2], events[1:-1:2], strict=True):
        assert end["seq"] > start["seq"] >= 0
        inside = [f for f in frames if start["ts"] <= f["capture_ts"] <= end["ts"]]
        assert len(inside) >= 5, (start, end)
    info = result["session"]
    assert info["state"] == "ended" and info["end_reason"] == "completed" and info["joined_ts"] > 0


# --------------------------------------------------------------------------------------------- child process


def _write_clip(path: Path) -> None:
    import av

    from phantom.face import Phantom
    from phantom.spec import PatientSpec

    phantom = Phantom(PatientSpec(seed=3, protocol=PROTOCOL, severity=1.0), 640, 480, 30)
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(N_FRAMES):
            frame = av.VideoFrame.from_ndarray(phantom.render(i), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


async def _scenario(out: Path, work: Path) -> None:
    import httpx
    from playwright.async_api import async_playwright

    from common.bus import Bus
    from common.messages import Event
    from common.session_store import SessionStore
    from common.settings import CommonSettings
    from common.streams import EVENTS, FRAMES
    from infra.redis_server import RedisServer
    from ingest.settings import IngestSettings
    from tests.integration.test_ingest_webrtc import serve

    clip = work / "camera.y4m"
    _write_clip(clip)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with RedisServer() as redis:
        settings = IngestSettings(
            common=CommonSettings(redis_url=redis.url),
            port=port,
            ice_host_addresses=["127.0.0.1"],
            countdown_s=0.3,
            hold_s=HOLD_S,
            reps=1,
            rest_s=0.2,
        )
        bus = await Bus.connect(redis.url, name="browser-test")
        frames: list[dict[str, Any]] = []
        async with serve(settings) as url, httpx.AsyncClient(base_url=url) as http:
            created = (await http.post("/api/sessions", json={"patient_id": "b1", "protocol": PROTOCOL})).json()
            sid = created["sid"]

            async def collect() -> None:
                while True:
                    got = await bus.consume(FRAMES, [sid], "test", count=64, block_ms=200)
                    frames.extend(
                        {k: getattr(d.message, k) for k in ("seq", "capture_ts", "width", "height")} for d in got
                    )
                    await bus.ack(got)

            collector = asyncio.ensure_future(collect())
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=CHROMIUM,
                    headless=True,
                    args=[
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-quic",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--use-fake-ui-for-media-stream",
                        "--use-fake-device-for-media-stream=fps=30",
                        f"--use-file-for-fake-video-capture={clip}",
                        "--allow-loopback-in-peer-connection",
                    ],
                )
                page = await browser.new_page()
                page.on("console", lambda msg: print("console:", msg.text, flush=True))
                await page.goto(created["join_url"])
                await page.wait_for_selector("body[data-phase=consent]", timeout=20_000)
                await page.check("#consent")
                await page.click("#start")
                await page.wait_for_selector("body[data-phase=end], body[data-phase=error]", timeout=90_000)
                phase = await page.evaluate("document.body.dataset.phase")
                error = await page.text_content("#error-text")
                await browser.close()
            await asyncio.sleep(0.5)
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)
            events: list[Event] = [d.message for d in await bus.range(EVENTS, sid)]
            result = {
                "phase": phase,
                "error": error,
                "frames": frames,
                "events": [
                    {"type": e.type, "task": e.task, "rep": e.rep, "ts": e.ts, "seq": e.seq, "text": e.text}
                    for e in events
                ],
                "session": (await SessionStore(bus).require(sid)).as_json(),
            }
        await bus.close()
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="feqa-browser-") as tmp:
        asyncio.run(_scenario(Path(sys.argv[1]), Path(tmp)))
    print(f"browser scenario took {time.monotonic() - started:.1f} s", flush=True)
