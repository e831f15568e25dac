"""What the demo and end-to-end tests share: the demo's smile model trained once per test process (through the real
MediaPipe landmarker, by the demo's own training code), a ``feqa demo`` child process whose printed lines are read
as they come, and a logged-in dashboard's live websocket."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import websockets
from websockets.typing import Origin

from infra.demo_models import DemoTraining, demo_models_dir, landmarker_identity, missing, train_demo_models
from tests.dashboard_kit import free_port

MEDIAPIPE = Path(__file__).resolve().parents[1] / "models" / "mediapipe"
# Small but fair: 2 training subjects per severity (plus 1 held out), 5 clips each of one length (3.2 s at 10 fps)
# starting anywhere in the phantom's continuous smiling, so the one model serves both the demo patient (whose task
# marks follow the phantom's onsets) and the browser patient page (which times the tasks itself, HOLD_S long).
HOLD_S = 3.2
TRAINING = DemoTraining(tasks=("smile",), per_severity=2, clips=5, epochs=12, anywhere=True, clip_frames=32,
                        first_seed=8000)  # fmt: skip
_ROOT: list[Path] = []


def smile_models_root() -> Path:
    """A models root whose demo/ folder holds the demo smile model (trained on the first call of this process)."""
    if not _ROOT:
        keep = os.environ.get("FEQA_TEST_DEMO_MODELS")  # a developer's speed-up across runs; CI leaves it unset
        if keep:
            root = Path(keep)
            if not missing(demo_models_dir(root), TRAINING.tasks, landmarker_identity(MEDIAPIPE)):
                _ROOT.append(root)
                return root
        else:
            root = Path(tempfile.mkdtemp(prefix="feqa-demo-models-"))
            atexit.register(shutil.rmtree, root, True)
        spearman = train_demo_models(demo_models_dir(root), MEDIAPIPE, TRAINING)
        print("demo smile model, validation Spearman:", spearman)
        _ROOT.append(root)
    return _ROOT[0]


class DemoProcess:
    """``feqa demo`` as a child process; :meth:`line` waits for a printed line matching a pattern."""

    def __init__(self, args: list[str], data_dir: Path) -> None:
        self.ingest_port, self.dashboard_port = free_port(), free_port()
        env = dict(os.environ, FEQA_STACK_DATA_DIR=str(data_dir), FEQA_STACK_INGEST_PORT=str(self.ingest_port),
                   FEQA_STACK_DASHBOARD_PORT=str(self.dashboard_port), FEQA_LOG_LEVEL="INFO")  # fmt: skip
        code = "from infra.cli import main; main()"
        self.proc = subprocess.Popen([sys.executable, "-c", code, "demo", *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """The first new printed line matching the regular expression ``pattern``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            found = re.search(pattern, line)
            if found is not None:
                return found
        tail = "\n".join(self.seen[-40:])
        raise AssertionError(
            f"feqa demo printed no line matching {pattern!r} in {timeout_s} s; its output ended:\n{tail}"
        )

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM the demo (it stops its stack) and wait; SIGKILL its process group only if it hangs."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            return self.proc.wait(10)


@contextlib.contextmanager
def demo_process(args: list[str], data_dir: Path) -> Iterator[DemoProcess]:
    demo = DemoProcess(args, data_dir)
    try:
        yield demo
    finally:
        demo.stop()


async def watch_scores(
    base_url: str, cookie: str, session_id: int, want: int, timeout_s: float
) -> list[dict[str, Any]]:
    """Watch one session on the dashboard's live websocket; return its score items once ``want`` arrived."""
    ws_url = base_url.replace("http://", "ws://") + "/ws"
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    async with websockets.connect(ws_url, origin=Origin(base_url), additional_headers={"Cookie": cookie}) as ws:
        await ws.send(json.dumps({"op": "watch", "session": session_id}))
        while len(got) < want and time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            msg = json.loads(raw)
            got.extend(item["d"] for item in msg.get("items", []) if item.get("t") == "score")
    return got
