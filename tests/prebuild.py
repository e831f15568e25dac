"""Expensive inputs some tests share (trained and exported models), built by child processes that start as soon as
the session's tests are collected, below the tests' CPU priority: a test run is serial and most of its tests keep one
core busy, so the builds use the core it leaves idle. The work is exactly what the tests did themselves before; only
when and where it runs changed.

Priorities: the build the tests need first (:data:`FINISH_ORDER`) runs :data:`NICE` steps below the tests, each later
one a step lower, so on a busy machine the builds do not split the idle core evenly but finish roughly in the order
they are read (``mypy`` in .ci/run runs below them all: nothing waits for it before the tests end).
A test that has to wait for a build raises that build's priority to its own (the waiting test is then idle, and
nothing else in the run is more urgent), where the system lets it; a niced build left at the lowest priority found
no idle core on a loaded machine and its tests waited twice as long as the work itself takes. The session's
summary lists each build's time and how long tests waited for it.

A test names the builds it needs with ``@pytest.mark.prebuilt("name", ...)`` and reads them through the
``prebuilt`` fixture (:meth:`Prebuilds.wait` returns the build's folder once its child exited cleanly). The tests
that need a build run after all others (tests/conftest.py), so the builds have the whole run to finish. Each build
is a module run as ``python -m MODULE FOLDER`` (its ``__main__`` writes everything into FOLDER); a build whose
child fails fails every test that needs it, with the child's output.
"""

from __future__ import annotations

import dataclasses
import functools
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
NICE = 12  # added to the tests' own niceness: below them (a test that wants the CPU gets it), above mypy in .ci/run


@dataclasses.dataclass(frozen=True)
class Build:
    """``python -m module FOLDER`` with ``env`` added."""

    module: str
    env: tuple[tuple[str, str], ...] = ()


BUILDS: dict[str, Build] = {
    # the browser end-to-end test's three phantom cameras, y4m files (tests/browser_cameras.py)
    "browser-cameras": Build("tests.browser_cameras"),
    # the demo build command (feqa train --demo) on a tiny recipe, two tasks at a time and one alone
    # (tests/demo_kit.py); the demo and browser tests serve the committed models, infra/demo_artifacts
    "demo": Build("tests.demo_kit"),
    # the ranking test's micro TraMP-Former, trained with a fixed string-hash seed (tests/ranking_model.py)
    "ranking": Build("tests.ranking_model", env=(("PYTHONHASHSEED", "0"),)),
    # two trainings of one config and data under different string-hash seeds (tests/reproducible_runs.py)
    "reproducible": Build("tests.reproducible_runs"),
    # the trainer tests' 48-subject phantom smile cohort, as crops and as source videos, and a micro run trained on
    # each (tests/smile_cohort.py)
    "smile-cohort": Build("tests.smile_cohort"),
    # the trajectory-only tests' 64-subject set (trajectory files only) and two runs on it (tests/trajectory_runs.py)
    "trajectory-runs": Build("tests.trajectory_runs"),
    # the fair phantom's smiles (the fixture fair_pfed5_smile), and the cross-fit and dead-head tests' five micro
    # runs on them (tests/fair_smile_runs.py)
    "fair-smile": Build("tests.fair_smile_runs"),
    # the random-weight micro artifact the scorer tests share (tests/model_artifacts.py)
    "random-artifact": Build("tests.model_artifacts"),
}
# the tests needing a build run after all others, grouped by the build that usually finishes last among theirs; the
# builds' priorities follow the same order (the first is read first); the browser cameras come last: in a whole run
# their test runs in a second process (tests/beside.py), which builds them itself
FINISH_ORDER = (
    "random-artifact",
    "fair-smile",
    "trajectory-runs",
    "smile-cohort",
    "reproducible",
    "ranking",
    "demo",
    "browser-cameras",
)


def build_nice(name: str) -> int:
    """How far below the tests a build starts: :data:`NICE` for the first of :data:`FINISH_ORDER`, one more per
    place (the system caps the sum at 19)."""
    return min(19, NICE + FINISH_ORDER.index(name))


DONE = "prebuilt.done"  # written by :func:`finished` as a build's last act
LOG = "prebuilt.log"  # the child's stdout and stderr


def finished(folder: Path) -> None:
    """Called by a build's ``__main__`` when everything it makes is in ``folder``."""
    (folder / DONE).write_text("ok\n")


def feqa_trainer(args: list[str], log: Path, **env: str) -> str:
    """``feqa ARGS`` (one of the trainer's commands) in a child process, as a user runs it; what it printed (stdout
    and stderr together), also kept in ``log``. A failure ends the build with the command's output."""
    code = "from infra.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, *args], env={**os.environ, **env}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)  # fmt: skip
    log.write_text(done.stdout)
    if done.returncode != 0:
        raise SystemExit(f"feqa {' '.join(args)} failed (exit {done.returncode}):\n{done.stdout[-4000:]}")
    return done.stdout


class Prebuilds:
    """The session's builds: started on demand (at most once each), waited for by the tests that need them."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="feqa-prebuilt-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.folders: dict[str, Path] = {}
        self.started: dict[str, float] = {}  # time.time() at each build's start
        self.waited: dict[str, float] = {}  # seconds the tests spent waiting for each build, in all

    def start(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.folders:
                continue
            build = BUILDS[name]
            folder = self.base / name
            folder.mkdir(parents=True, exist_ok=True)
            self.folders[name] = folder
            (folder / DONE).unlink(missing_ok=True)
            env = {**os.environ, **dict(build.env), "PYTHONPATH": str(ROOT)}
            nice = build_nice(name)
            with (folder / LOG).open("wb") as log:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", build.module, str(folder)], cwd=ROOT, env=env, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=functools.partial(os.nice, nice),
                )  # fmt: skip
            self.started[name] = time.time()

    def wait(self, name: str, timeout_s: float = 1800) -> Path:
        """The build's folder once its child has finished; a failed or hung build is an error with its output."""
        self.start([name])
        folder = self.folders[name]
        proc = self.procs.get(name)
        if proc is not None:
            t0 = time.monotonic()
            if proc.poll() is None:
                self._hurry(proc)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                raise AssertionError(
                    f"build {name!r} still running after {timeout_s} s:\n{self.output(name)}"
                ) from None
            finally:
                self.waited[name] = self.waited.get(name, 0.0) + (time.monotonic() - t0)
            if proc.returncode != 0 or not (folder / DONE).is_file():
                raise AssertionError(f"build {name!r} failed (exit {proc.returncode}):\n{self.output(name)}")
        return folder

    def summary(self) -> list[str]:
        """One line per build started: its niceness offset, how long it ran (from its start to its :data:`DONE`
        file) and how long the tests waited for it."""
        lines = []
        for name, started in self.started.items():
            done = self.folders[name] / DONE
            ran = f"ran {done.stat().st_mtime - started:.0f} s" if done.is_file() else "did not finish"
            waited = self.waited.get(name, 0.0)
            lines.append(f"{name}: nice +{build_nice(name)}, {ran}, tests waited {waited:.0f} s for it")
        return lines

    @staticmethod
    def _hurry(proc: subprocess.Popen[bytes]) -> None:
        """Give a build a test now waits for the waiting test's own priority (its process group: the build and any
        worker it started). Raising a priority needs the right to (root or CAP_SYS_NICE); without it the build goes
        on at its own."""
        try:
            os.setpriority(os.PRIO_PGRP, proc.pid, os.getpriority(os.PRIO_PROCESS, 0))
        except (PermissionError, ProcessLookupError):
            return

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
