"""Expensive inputs some tests share (trained and exported models), built by child processes that start as soon as
the session's tests are collected, at the lowest CPU priority: a test run is serial and most of its tests keep one
core busy, so the builds use the core it leaves idle, and a test that needs one waits for it (then the build has
both cores). The work is exactly what the tests did themselves before; only when and where it runs changed.

A test names the builds it needs with ``@pytest.mark.prebuilt("name", ...)`` and reads them through the
``prebuilt`` fixture (:meth:`Prebuilds.wait` returns the build's folder once its child exited cleanly). The tests
that need a build run after all others (tests/conftest.py), so the builds have the whole run to finish. Each build
is a module run as ``python -m MODULE FOLDER`` (its ``__main__`` writes everything into FOLDER); a build whose
child fails fails every test that needs it, with the child's output.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NICE = 19  # the lowest priority: a test that wants the CPU gets it


@dataclasses.dataclass(frozen=True)
class Build:
    """``python -m module FOLDER`` with ``env`` added; ``keep_env`` names a variable a developer may set to a folder
    kept across runs (the build's ``__main__`` then reuses what is still valid there)."""

    module: str
    env: tuple[tuple[str, str], ...] = ()
    keep_env: str = ""


BUILDS: dict[str, Build] = {
    # the demo's smile and frown models, trained two at a time by the demo's own code (tests/demo_kit.py)
    "demo": Build("tests.demo_kit", keep_env="FEQA_TEST_DEMO_MODELS"),
    # the ranking test's micro TraMP-Former, trained with a fixed string-hash seed (tests/ranking_model.py)
    "ranking": Build("tests.ranking_model", env=(("PYTHONHASHSEED", "0"),)),
    # two trainings of one config and data under different string-hash seeds (tests/reproducible_runs.py)
    "reproducible": Build("tests.reproducible_runs"),
    # the trainer tests' 48-subject phantom smile cohort, as crops and as source videos (tests/smile_cohort.py)
    "smile-cohort": Build("tests.smile_cohort"),
}
# the tests needing a build run after all others, grouped by the build that usually finishes last among theirs
FINISH_ORDER = ("smile-cohort", "reproducible", "ranking", "demo")
DONE = "prebuilt.done"  # written by :func:`finished` as a build's last act
LOG = "prebuilt.log"  # the child's stdout and stderr


def finished(folder: Path) -> None:
    """Called by a build's ``__main__`` when everything it makes is in ``folder``."""
    (folder / DONE).write_text("ok\n")


class Prebuilds:
    """The session's builds: started on demand (at most once each), waited for by the tests that need them."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="feqa-prebuilt-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.folders: dict[str, Path] = {}
        self.started: dict[str, float] = {}

    def start(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.folders:
                continue
            build = BUILDS[name]
            kept = os.environ.get(build.keep_env) if build.keep_env else None
            folder = Path(kept) if kept else self.base / name
            folder.mkdir(parents=True, exist_ok=True)
            self.folders[name] = folder
            (folder / DONE).unlink(missing_ok=True)
            env = {**os.environ, **dict(build.env), "PYTHONPATH": str(ROOT)}
            with (folder / LOG).open("wb") as log:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", build.module, str(folder)], cwd=ROOT, env=env, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=lambda: os.nice(NICE),
                )  # fmt: skip
            self.started[name] = time.monotonic()

    def wait(self, name: str, timeout_s: float = 1800) -> Path:
        """The build's folder once its child has finished; a failed or hung build is an error with its output."""
        self.start([name])
        folder = self.folders[name]
        proc = self.procs.get(name)
        if proc is not None:
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                raise AssertionError(
                    f"build {name!r} still running after {timeout_s} s:\n{self.output(name)}"
                ) from None
            if proc.returncode != 0 or not (folder / DONE).is_file():
                raise AssertionError(f"build {name!r} failed (exit {proc.returncode}):\n{self.output(name)}")
        return folder

    def output(self, name: str, chars: int = 6000) -> str:
        path = self.folders[name] / LOG
        return path.read_text(errors="replace")[-chars:] if path.is_file() else ""

    def close(self) -> None:
        """Stop any build still running (by its process group) and remove the session's folders."""
        for proc in self.procs.values():
            if proc.poll() is None:
                self._kill(proc)
        shutil.rmtree(self.base, ignore_errors=True)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
