"""The browser end-to-end test's fake cameras (tests/integration/test_e2e_browser.py): each patient's whole phantom
performance as a y4m file, which Chromium's fake capture device loops.

``python -m tests.browser_cameras FOLDER`` is the build ``browser-cameras`` (tests/prebuild.py): the same files the
test rendered itself before its stack started (three photo-real phantoms, 231 frames each, 8-25 s of one core on
this 2-core machine depending on its load), made beside the tests instead; :func:`camera_paths` names them."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.demo_kit import BROWSER_SEVERITIES, camera_spec, write_camera
from tests.prebuild import finished

FIRST_SEED = 8500  # patient k (severity BROWSER_SEVERITIES[k]) is the phantom seeded FIRST_SEED + k


def camera_paths(folder: Path) -> list[Path]:
    """The patients' camera files, in the order of :data:`tests.demo_kit.BROWSER_SEVERITIES`."""
    return [folder / f"camera{k}.y4m" for k in range(len(BROWSER_SEVERITIES))]


def write_cameras(folder: Path) -> list[Path]:
    """Render every patient's camera file into ``folder``."""
    paths = camera_paths(folder)
    for k, (path, severity) in enumerate(zip(paths, BROWSER_SEVERITIES, strict=True)):
        write_camera(path, camera_spec(FIRST_SEED + k, severity))
    return paths


if __name__ == "__main__":  # the build: python -m tests.browser_cameras FOLDER
    out = Path(sys.argv[1])
    write_cameras(out)
    finished(out)
