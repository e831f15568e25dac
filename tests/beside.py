"""Tests run in a second pytest process beside the others: the few long tests that spend most of their time waiting
on real time (a phantom or a browser patient performing a protocol at its own pace) rather than on the CPU.

A test marked ``@pytest.mark.beside`` in a run that also holds tests without the mark is run by a child
``python -m pytest NODEIDS`` started as soon as the tests are collected, at the tests' own priority (a patient
streaming in real time must not starve); in this process the same test, placed after every other, waits for the
child's verdict on it and reports that: passed, failed with the child's report, or skipped with its reason. The test
itself, its fixtures and its assertions are the same; only the process it runs in changes. A run of the marked tests
alone, or with ``--serial``, runs them here as before.

The child writes a JUnit XML report (pytest's own ``--junitxml``) and its output, both printed in part in this
run's summary (its slowest tests, its verdict)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD_ENV = "FEQA_TESTS_BESIDE_CHILD"  # set in the child: its tests run there, not beside again


def in_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


def junit_key(nodeid: str) -> tuple[str, str]:
    """The (classname, name) pytest's JUnit report gives the test ``nodeid``."""
    parts = nodeid.split("::")
    module = parts[0].removesuffix(".py").replace("/", ".")
    return ".".join([module, *parts[1:-1]]), parts[-1]


class Beside:
    """The child pytest process and its verdicts."""

    def __init__(self, nodeids: Iterable[str]) -> None:
        self.nodeids = list(nodeids)
        self.base = Path(tempfile.mkdtemp(prefix="feqa-beside-"))
        self.xml = self.base / "report.xml"
        self.log = self.base / "output.log"
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={self.xml}",
               f"--basetemp={self.base / 'tmp'}", *self.nodeids]  # fmt: skip
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, CHILD_ENV: "1"}, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.started = time.time()
        self.ran_s: float | None = None
        self.waited_s = 0.0
        self._verdicts: dict[tuple[str, str], tuple[str, str]] | None = None

    def verdict(self, nodeid: str, timeout_s: float) -> tuple[str, str]:
        """("passed" | "failed" | "skipped", the child's report or skip reason) for the test ``nodeid``, once the
        child has finished."""
        if self._verdicts is None:
            t0 = time.monotonic()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._kill()
                return "failed", f"the tests beside still ran after {timeout_s:.0f} s:\n{self.output()}"
            finally:
                self.waited_s += time.monotonic() - t0
            if self.xml.is_file():  # written as the child's last act
                self.ran_s = self.xml.stat().st_mtime - self.started
            self._verdicts = self._read()
        found = self._verdicts.get(junit_key(nodeid))
        if found is None:
            return "failed", f"the tests beside (exit {self.proc.returncode}) reported nothing on it:\n{self.output()}"
        return found

    def _read(self) -> dict[tuple[str, str], tuple[str, str]]:
        if not self.xml.is_file():
            return {}
        out: dict[tuple[str, str], tuple[str, str]] = {}
        for case in ET.parse(self.xml).getroot().iter("testcase"):
            key = (case.get("classname", ""), case.get("name", ""))
            bad = [e for e in case if e.tag in ("failure", "error")]
            skipped = case.find("skipped")
            if bad:
                out[key] = "failed", "\n".join(f"{e.get('message', '')}\n{e.text or ''}" for e in bad)
            elif skipped is not None and skipped.get("type") != "pytest.xfail":
                out[key] = "skipped", skipped.get("message", "")
            else:
                out[key] = "passed", ""
        return out

    def output(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.is_file() else ""

    def summary(self) -> list[str]:
        """Where the child's time went (its slowest tests and its last line) and how long this run waited for it."""
        ran = f"ran {self.ran_s:.0f} s" if self.ran_s is not None else "did not finish in this run"
        lines = [f"{len(self.nodeids)} tests in a second process: {ran}, this run waited {self.waited_s:.0f} s for it"]
        text = self.output(20000).splitlines()
        start = next((i for i, line in enumerate(text) if "slowest" in line), len(text))
        for line in text[start + 1 :]:
            if line.strip() and "durations <" not in line:
                lines.append(line)
            if re.search(r"\b(passed|failed|error|errors|skipped)\b.* in [\d.]+s", line):
                break  # the child's verdict line; what follows is its interpreter's shutdown
        return lines

    def close(self) -> None:
        if self.proc.poll() is None:
            self._kill()
        shutil.rmtree(self.base, ignore_errors=True)

    def _kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
