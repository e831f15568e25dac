"""The trainer tests' fair phantom smile cohort: 48 subjects, 3 smile clips each, at 5 fps (the cohort on which the
micro TraMP-Former ranks severity above chance: tests/integration/test_trainer_e2e.py says why), rendered once per
test run in a build started when the tests are collected (tests/prebuild.py), not by each test that needs it.

``python -m tests.smile_cohort FOLDER`` is the build: ``FOLDER/crops``, the PFED5 layout with its landmark and crop
files (test_trainer_e2e.py trains on it), and ``FOLDER/videos``, the same clips as source videos alone
(test_trainer_landmarking.py trains from the videos). Each is exactly what ``write_pfed5`` writes for the cohort;
a test that changes a file works on a copy.

The cohort's two micro TraMP-Former trainings are made here too, beside the tests rather than between them (about
100 s of one core each), by ``feqa train`` in a child process as a user runs it: ``FOLDER/run``, trained on the crops
(:func:`train_args`; test_trainer_e2e.py reads a copy, and the export of its ``best.pt`` in ``FOLDER/exported``:
:func:`export_best_alone`), and ``FOLDER/videos-run``, trained from the source videos
alone (:func:`train_from_videos`, evaluated there too; test_trainer_landmarking.py reads it)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from phantom.dataset import write_pfed5
from tests.prebuild import feqa_trainer, finished

FPS = 5.0
N_SUBJECTS, CLIPS_PER_TASK, SEED = 48, 3, 3
CROPS, VIDEOS, RUN = "crops", "videos", "run"
VIDEO_RUN = "videos-run"  # the damaged copy of the videos (DATA), what prepare printed (PREPARED), the run (RUN)
DATA, PREPARED, EVALUATED = "data", "prepare.txt", "evaluate.txt"
EXPORTED = "exported"  # the models folder export_best_alone writes


def data_sets(dataset: Path, *sets: str) -> list[str]:
    """The ``--set`` options for the micro model on the cohort's smiles at :data:`FPS` (``sets`` added)."""
    args = []
    for item in (f'data.root="{dataset}"', 'data.expressions=["smile"]', f"data.fps={FPS}", *sets):
        args += ["--set", item]
    return args


def train_args(dataset: Path, run: Path, *sets: str) -> list[str]:
    """``feqa train``'s arguments for the micro model on the cohort's smiles (``sets`` added)."""
    return ["train", "-c", "micro", "--run-dir", str(run), *data_sets(dataset, *sets)]


def damaged_video(root: Path) -> Path:
    """The smile recording :func:`train_from_videos` cuts short (as in a broken transfer)."""
    return sorted((root / "videos").rglob("*_1.mp4"))[0]


def train_from_videos(folder: Path) -> None:
    """A copy of the source videos with one recording cut short, prepared by the phantom's landmarker (the videos
    carry its truth), trained on and evaluated: ``feqa prepare``, ``feqa train`` with :func:`train_args`, then
    ``feqa evaluate RUN --bootstrap 50`` (what it printed in :data:`EVALUATED`, its metrics in the run)."""
    out = folder / VIDEO_RUN
    shutil.copytree(folder / VIDEOS, out / DATA)
    damaged = damaged_video(out / DATA)
    damaged.write_bytes(damaged.read_bytes()[:2000])
    feqa_trainer(["prepare", "-c", "micro", *data_sets(out / DATA)], out / PREPARED, FEQA_TRACKER_LANDMARKER="phantom")
    feqa_trainer(train_args(out / DATA, out / RUN), out / "train.log", FEQA_TRACKER_LANDMARKER="phantom")
    feqa_trainer(["evaluate", str(out / RUN), "--bootstrap", "50"], out / EVALUATED, FEQA_TRACKER_LANDMARKER="phantom")


def build(folder: Path) -> None:
    for contents in (CROPS, VIDEOS):
        write_pfed5(folder / contents, n_subjects=N_SUBJECTS, clips_per_task=CLIPS_PER_TASK, seed=SEED, width=320,
                    height=240, fps=FPS, contents=contents, only=("smile",))  # fmt: skip
    feqa_trainer(train_args(folder / CROPS, folder / RUN), folder / "train.log")
    export_best_alone(folder)
    train_from_videos(folder)


def export_best_alone(folder: Path) -> None:
    """The crops run's ``best.pt`` copied into a folder holding nothing else and exported from there as version 3
    (``feqa export BEST --models-dir FOLDER/EXPORTED --version 3``: best.pt alone is enough)."""
    alone = folder / "elsewhere" / "best.pt"
    alone.parent.mkdir()
    alone.write_bytes((folder / RUN / "smile" / "best.pt").read_bytes())
    feqa_trainer(
        ["export", str(alone), "--models-dir", str(folder / EXPORTED), "--version", "3"], folder / "export.log"
    )


if __name__ == "__main__":  # the build: python -m tests.smile_cohort FOLDER
    out = Path(sys.argv[1])
    build(out)
    finished(out)
