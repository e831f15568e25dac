"""Fixtures shared by the trainer's end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from phantom.dataset import write_pfed5
from tests.integration.fair_phantom import equalise_lengths
from tests.prebuild import Prebuilds

# 8 fps keeps every clip (about 25-40 frames, cut to the shortest) close to the micro models' windows; 16 subjects
# give 12 test clips per expression from 4 held-out subjects.
FAIR_FPS = 8.0


FAIR = {"n_subjects": 16, "clips_per_task": 3, "seed": 3}


@pytest.fixture(scope="session")
def fair_pfed5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom PFED5 layout whose clips all have one length (see tests/integration/fair_phantom.py)."""
    root = write_pfed5(tmp_path_factory.mktemp("pfed5"), width=320, height=240, fps=FAIR_FPS, **FAIR)
    equalise_lengths(root)
    return root


@pytest.fixture(scope="session")
def fair_pfed5_smile(prebuilt: Prebuilds) -> Path:
    """:func:`fair_pfed5`'s smile clips alone, the same files byte for byte (cut to the whole layout's one length),
    for tests that train on smiles only: the other four tasks' clips (four fifths of the rendering) are not made.
    Rendered by the build ``fair-smile`` beside the tests (tests/fair_smile_runs.py: ``write_data``); a test using
    it is marked ``@pytest.mark.prebuilt("fair-smile")`` so that the build starts when the tests are collected."""
    from tests import fair_smile_runs

    return prebuilt.wait("fair-smile", timeout_s=900) / fair_smile_runs.DATA
