"""``feqa demo``: the embedded stack (:mod:`infra.stack`) with phantom patients streaming into it.

1. The demo models (:mod:`infra.demo_models`): the committed ones (``infra/demo_artifacts``, made by ``feqa train
   --demo``) when their fingerprint matches this code and the landmarker in use; else they are trained (progress
   bars; cached under ``models/demo/``), through the same MediaPipe landmarker the tracker runs, one task per CPU at
   a time (:mod:`infra.demo_parallel`), and the demo says why. The scorer serves them.
2. The dashboard's database gets the demo clinic and a clinician whose password is generated for this run.
3. The stack starts (Redis, ingest, tracker with the real landmarker, scorer, dashboard); the URL and login print.
4. As that clinician, the demo adds N phantom patients (severities spread over the pfed5 scale) and starts their
   sessions through the dashboard; each patient joins its link and streams the whole pfed5 protocol over WebRTC
   (:mod:`infra.demo_patient`). A round ends when every patient has finished; rounds repeat (each a new session,
   so the patients build a history) until Ctrl-C, or ``--rounds`` of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from infra.demo_dashboard import ClinicianClient, demo_account
from infra.demo_models import (
    ARTIFACTS,
    BUILD_COMMAND,
    DemoTraining,
    crop_side,
    demo_models_dir,
    fingerprint_mismatch,
    landmarker_identity,
    missing,
)
from infra.demo_parallel import default_workers, train_parallel
from infra.demo_patient import PatientRun, run_patient
from infra.settings import StackSettings
from infra.stack import Stack
from phantom.spec import PatientSpec

log = logging.getLogger(__name__)
USERNAME = "demo"


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    patients: int = 2
    rounds: int = 0  # 0: until stopped
    reps: int = 2  # repetitions of each task per session
    seed: int = 1
    models_root: Path = Path("models")
    mediapipe_dir: Path = Path("models/mediapipe")
    final_wait_s: float = 20.0  # how long a finished session's last task scores are waited for
    training: DemoTraining = dataclasses.field(default_factory=DemoTraining)
    train_workers: int = 0  # processes training the demo models on first run; 0: one per CPU (infra.demo_parallel)
    appearance: str = "photo"  # the patients' faces: photo-real (phantom.photoreal), as the models were trained on
    artifacts: Path = ARTIFACTS  # the committed models, served when they fit (``feqa train --demo`` makes them)


def severities(n: int) -> list[float]:
    """``n`` severities spread evenly over the inside of the pfed5 scale (0-4), one decimal."""
    return [round(4.0 * (i + 0.5) / n, 1) for i in range(n)]


def patient_specs(opts: DemoOptions, round_no: int) -> list[PatientSpec]:
    """Each patient keeps its face (identity seed) across rounds; its movements differ per round."""
    base = opts.seed * 1000
    return [
        PatientSpec(base + 10 * round_no + k, "pfed5", sev, reps=opts.reps, identity_seed=base + k, head_motion=0.0,
                    appearance=opts.appearance)
        for k, sev in enumerate(severities(opts.patients))
    ]  # fmt: skip


def prepare_models(opts: DemoOptions, echo: Callable[[str], None]) -> Path:
    """The demo models' folder: the committed artifacts when their fingerprint matches (every task's, with this
    recipe and this landmarker), else ``models/demo/`` after training whatever is missing there."""
    models = demo_models_dir(opts.models_root).resolve()
    if not (opts.mediapipe_dir / "face_landmark.onnx").is_file():
        raise ConfigError(f"no MediaPipe models in {opts.mediapipe_dir}; run bash infra/setup.sh (it fetches them)")
    why = fingerprint_mismatch(opts.artifacts, dataclasses.replace(opts.training, tasks=()), opts.mediapipe_dir)
    if not why:
        echo(f"demo models: the committed ones in {opts.artifacts} (their fingerprint matches this code and the "
             "landmarker in use)")  # fmt: skip
        return opts.artifacts.resolve()
    echo(f"demo models: the committed ones in {opts.artifacts} do not fit ({why}; {BUILD_COMMAND} rebuilds them)")
    tasks = opts.training.tasks or ("rest", "smile", "frown", "squeeze_eyes", "clench_teeth")
    todo = missing(models, tasks, landmarker_identity(opts.mediapipe_dir))
    if todo:
        echo(f"training the demo models for {', '.join(todo)} on phantom patients (once; cached in {models})")
        workers = opts.train_workers or default_workers(len(todo))
        spearman = train_parallel(models, opts.mediapipe_dir, opts.training, tuple(todo), workers, echo)
        for task, rho in spearman.items():
            echo(f"  {task:<14} validation Spearman {rho:.2f} (held-out phantom subjects; clip-length baseline 0)")
    return models


class Demo:
    """The stack plus the demo's account and patients."""

    def __init__(self, opts: DemoOptions, settings: StackSettings) -> None:
        self.opts = opts
        self.settings = settings
        self.stack: Stack | None = None
        self.password = ""
        self.username = USERNAME
        self.runs: list[PatientRun] = []

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.dashboard_port}"

    @property
    def ingest_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.ingest_port}"

    def start(self, models: Path) -> None:
        data = self.settings.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        database = os.environ.get("FEQA_DASHBOARD_DATABASE_URL") or f"sqlite:///{data / 'dashboard.sqlite'}"
        self.password = demo_account(database, USERNAME)
        os.environ["FEQA_MODELS_DIR"] = str(models)
        os.environ["FEQA_TRACKER_LANDMARKER"] = "mediapipe"  # the real landmarker, never the phantom's truth
        os.environ["FEQA_TRACKER_MEDIAPIPE_DIR"] = str(self.opts.mediapipe_dir.resolve())
        # crops of the side the demo models take (their shared rgb_size, else 256): the same pixels as training
        os.environ.setdefault("FEQA_TRACKER_CROP_SIZE", str(crop_side(models)))
        # The phantom's smooth shading at 320x240 measures 11-20 on the blur gate (variance of the Laplacian of the
        # crop; 15 by default): the demo lowers it so a still phantom is not withheld as blurry.
        os.environ.setdefault("FEQA_TRACKER_MIN_SHARPNESS", "5")
        if self.settings.host.startswith("127."):
            os.environ.setdefault("FEQA_INGEST_ICE_HOST_ADDRESSES", f'["{self.settings.host}"]')
        self.stack = Stack(self.settings)
        self.stack.start()

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None

    async def _watch(self) -> None:
        """Return when a service dies (the demo then stops with that reason)."""
        assert self.stack is not None
        while True:
            for child in self.stack.children:
                code = child.proc.poll()
                if code is not None:
                    self.stack.request_stop(f"{child.spec.name} exited with {code}")
                    return
            await asyncio.sleep(0.5)

    async def _summary(self, dash: ClinicianClient, session_id: int, spec: PatientSpec, expected: int) -> str:
        """One line per finished session: its task scores as the dashboard stored them (waiting briefly for the
        last ones, which the scorer writes after the patient hung up, and for the dashboard to record the end)."""
        deadline = asyncio.get_running_loop().time() + self.opts.final_wait_s
        while True:
            detail = await dash.json("GET", f"/api/sessions/{session_id}")
            scores = detail["task_scores"]
            done = len(scores) >= expected and detail["session"]["state"] == "ended"
            if done or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
        parts = []
        for s in scores:
            value = f"{s['score']:.1f}" if s["score"] is not None else f"withheld ({s['withheld']})"
            parts.append(f"{s['task']}#{s['rep']} {value}")
        return (f"  session {session_id} (severity {spec.severity:g}): {len(scores)}/{expected} task scores: "
                + ", ".join(parts))  # fmt: skip

    async def run(self, stop: asyncio.Event, echo: Callable[[str], None]) -> None:
        """Run rounds of phantom sessions until ``stop`` is set, a service dies, or the rounds are done."""
        watcher = asyncio.create_task(self._watch())
        try:
            async with ClinicianClient(self.dashboard_url) as dash:
                await dash.login(USERNAME, self.password)
                round_no = 0
                while not stop.is_set() and not watcher.done():
                    if self.opts.rounds and round_no >= self.opts.rounds:
                        break
                    specs = patient_specs(self.opts, round_no)
                    joins = []
                    for k, spec in enumerate(specs):
                        pid = await dash.patient(f"Phantom patient {k + 1}", f"DEMO-{k + 1}",
                                                 f"synthetic, severity {spec.severity:g}")  # fmt: skip
                        created = await dash.start_session(pid, "pfed5", note=f"phantom round {round_no + 1}")
                        joins.append((str(created["join_url"]).rsplit("/", 1)[-1], spec, int(created["id"])))
                    echo(f"round {round_no + 1}: {len(specs)} phantom patients streaming the pfed5 protocol")
                    patients = [asyncio.create_task(run_patient(self.ingest_url, token, spec, stop=stop))
                                for token, spec, _ in joins]  # fmt: skip
                    together = asyncio.gather(*patients)
                    waiters: list[asyncio.Future[Any]] = [together, watcher]
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    if not together.done():  # a service died
                        together.cancel()
                        await asyncio.gather(together, return_exceptions=True)
                        break
                    runs: list[PatientRun] = together.result()
                    self.runs.extend(runs)
                    for run, (_, spec, session_id) in zip(runs, joins, strict=True):
                        echo(await self._summary(dash, session_id, spec, len(run.events) // 2))
                    round_no += 1
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
