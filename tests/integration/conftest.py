"""Fixtures shared by the trainer's end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from phantom.dataset import write_pfed5
from tests.integration.fair_phantom import equalise_lengths

# 8 fps keeps every clip (about 25-40 frames, cut to the shortest) close to the micro models' windows; 16 subjects
# give 12 test clips per expression from 4 held-out subjects.
FAIR_FPS = 8.0


@pytest.fixture(scope="session")
def fair_pfed5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom PFED5 layout whose clips all have one length (see tests/integration/fair_phantom.py)."""
    root = write_pfed5(tmp_path_factory.mktemp("pfed5"), n_subjects=16, clips_per_task=3, seed=3, width=320,
                       height=240, fps=FAIR_FPS)  # fmt: skip
    equalise_lengths(root)
    return root
