"""Shared pieces of the real-Chromium tests: a private network namespace with only ``lo`` (``unshare -n``) so no
media leaves the machine, Chromium's flags, a phantom y4m as the fake camera, and running a scenario script inside
the namespace (the scenario writes its findings as JSON; the test checks them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]

BASE_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]


def camera_flags(clip: Path | None, fake_ui: bool = True) -> list[str]:
    """Flags for a fake camera playing ``clip`` at 30 fps (None: no camera at all); ``fake_ui`` accepts the
    camera prompt (without it headless Chromium refuses it)."""
    flags = list(BASE_FLAGS)
    if fake_ui:
        flags.append("--use-fake-ui-for-media-stream")
    if clip is not None:
        flags += ["--use-fake-device-for-media-stream=fps=30", f"--use-file-for-fake-video-capture={clip}"]
    return flags


def namespace_problem() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip is missing"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=20)
    if probe.returncode != 0:
        return f"no private network namespace here (unshare -n: {probe.stderr.decode(errors='replace').strip()})"
    return None


def run_in_namespace(script: Path, out: Path, *args: str, timeout: float = 300) -> tuple[dict[str, Any], str]:
    """Run ``script OUT ARGS...`` in a fresh network namespace; return what it wrote to OUT and its output."""
    problem = namespace_problem()
    if problem:
        pytest.skip(problem)
    quoted = " ".join(f"'{a}'" for a in (str(out), *args))
    cmd = f"ip link set lo up && exec {sys.executable} {script.resolve()} {quoted}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["unshare", "-n", "sh", "-c", cmd], capture_output=True, timeout=timeout, env=env)
    log_tail = (proc.stdout + proc.stderr).decode(errors="replace")[-6000:]
    assert proc.returncode == 0, log_tail
    result: dict[str, Any] = json.loads(out.read_text())
    return result, log_tail


def write_clip(path: Path, frames: int, protocol: str = "pfed5", seed: int = 3) -> Path:
    """A phantom patient as a y4m clip for Chromium's fake camera (640x480, 30 fps; Chromium loops it)."""
    import av

    from phantom.face import Phantom
    from phantom.spec import PatientSpec

    phantom = Phantom(PatientSpec(seed=seed, protocol=protocol, severity=1.0), 640, 480, 30)
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(phantom.render(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def page_settings(redis_url: str, port: int, **overrides: Any) -> Any:
    """Ingest settings for a patient page test: loopback media, the test service key, a quick protocol."""
    from common.settings import CommonSettings
    from ingest.settings import IngestSettings
    from tests.conftest import SERVICE_KEY

    base: dict[str, Any] = {
        "common": CommonSettings(redis_url=redis_url),
        "port": port,
        "api_key": SERVICE_KEY,
        "ice_host_addresses": ["127.0.0.1"],
        "countdown_s": 0.3,
        "hold_s": 0.8,
        "reps": 1,
        "rest_s": 0.2,
    }
    return IngestSettings(**{**base, **overrides})


async def start_button_visible(page: Any) -> dict[str, Any]:
    """Where Start is and whether a person sees and can press it without scrolling."""
    found: dict[str, Any] = await page.evaluate(
        """() => {
          const b = document.getElementById('start');
          const r = b.getBoundingClientRect();
          const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
          return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: innerWidth, height: innerHeight,
                  on_top: top === b, scroll_y: scrollY};
        }"""
    )
    found["visible"] = (found["on_top"] and found["top"] >= 0 and found["bottom"] <= found["height"]
                        and found["right"] <= found["width"] and found["scroll_y"] == 0)  # fmt: skip
    return found
