"""feqa tracker: face + 106 landmarks per frame, observations and crops in Redis, windows and a quality gate."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracker.settings import TrackerSettings


def run(settings: TrackerSettings | None = None) -> None:
    """Run a tracker worker in this process until SIGINT/SIGTERM."""
    from tracker.worker import run as run_worker  # imported on use: onnxruntime and cv2 load only for the worker

    run_worker(settings)
