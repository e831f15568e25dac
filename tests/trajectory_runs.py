"""The trajectory-only tests' set and runs (tests/integration/test_trainer_trajectory_only.py), made beside the tests
rather than between them (tests/prebuild.py): a fair phantom PFED5 set of smiles from 64 subjects written with
``contents="trajectories"`` (trajectory, colour and label files, no frames: only models without an RGB stream can
train on it), every clip cut to its shortest one's length, and two micro runs with ``model.rgb = false`` trained on
it by ``feqa train`` in a child process: seed 0 for :data:`EPOCHS` epochs, and seed 1 for one epoch (the ensemble
tests need a second member, not a good one).

``python -m tests.trajectory_runs FOLDER`` is the build: the set in ``FOLDER/data``, the runs in ``FOLDER/run`` and
``FOLDER/run-seed1`` (the tests work on copies of the runs)."""

from __future__ import annotations

import sys
from pathlib import Path

from phantom.dataset import write_pfed5
from tests.integration.fair_phantom import equalise_lengths
from tests.prebuild import feqa_trainer, finished

FPS = 8.0  # the fair phantom tests' rate (tests/integration/conftest.py: FAIR_FPS)
# four times the fair set's subjects, so the test Spearman (51 test clips from 17 held-out subjects) does not hang
# on one seed
N_SUBJECTS, CLIPS_PER_TASK, SEED = 64, 3, 3
EPOCHS = 6
DATA, RUN, OTHER_SEED = "data", "run", "run-seed1"


def train_args(root: Path, run: Path, seed: int, epochs: int) -> list[str]:
    """``feqa train``'s arguments for the trajectory-only micro model on the set's smiles."""
    args = ["train", "-c", "micro", "--run-dir", str(run)]
    for item in (f'data.root="{root}"', 'data.expressions=["smile"]', f"data.fps={FPS}", "model.rgb=false",
                 f"train.seed={seed}", f"optim.epochs={epochs}"):  # fmt: skip
        args += ["--set", item]
    return args


def build(folder: Path) -> None:
    root = folder / DATA
    write_pfed5(root, n_subjects=N_SUBJECTS, clips_per_task=CLIPS_PER_TASK, seed=SEED, width=320, height=240,
                fps=FPS, only=("smile",), contents="trajectories")  # fmt: skip
    equalise_lengths(root)
    feqa_trainer(train_args(root, folder / RUN, seed=0, epochs=EPOCHS), folder / "train.log")
    feqa_trainer(train_args(root, folder / OTHER_SEED, seed=1, epochs=1), folder / "train-seed1.log")


if __name__ == "__main__":  # the build: python -m tests.trajectory_runs FOLDER
    out = Path(sys.argv[1])
    build(out)
    finished(out)
