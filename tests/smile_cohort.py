"""The trainer tests' fair phantom smile cohort: 48 subjects, 3 smile clips each, at 5 fps (the cohort on which the
micro TraMP-Former ranks severity above chance: tests/integration/test_trainer_e2e.py says why), rendered once per
test run in a build started when the tests are collected (tests/prebuild.py), not by each test that needs it.

``python -m tests.smile_cohort FOLDER`` is the build: ``FOLDER/crops``, the PFED5 layout with its landmark and crop
files (test_trainer_e2e.py trains on it), and ``FOLDER/videos``, the same clips as source videos alone
(test_trainer_landmarking.py trains from the videos). Each is exactly what ``write_pfed5`` writes for the cohort;
a test that changes a file works on a copy."""

from __future__ import annotations

import sys
from pathlib import Path

from phantom.dataset import write_pfed5
from tests.prebuild import finished

FPS = 5.0
N_SUBJECTS, CLIPS_PER_TASK, SEED = 48, 3, 3
CROPS, VIDEOS = "crops", "videos"


def build(folder: Path) -> None:
    for contents in (CROPS, VIDEOS):
        write_pfed5(folder / contents, n_subjects=N_SUBJECTS, clips_per_task=CLIPS_PER_TASK, seed=SEED, width=320,
                    height=240, fps=FPS, contents=contents, only=("smile",))  # fmt: skip


if __name__ == "__main__":  # the build: python -m tests.smile_cohort FOLDER
    out = Path(sys.argv[1])
    build(out)
    finished(out)
