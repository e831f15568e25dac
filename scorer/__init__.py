"""feqa scorer: continuous and per-task expression-quality scores from exported models, with kinematics."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scorer.settings import ScorerSettings


def run(settings: ScorerSettings | None = None) -> None:
    """Run a scorer worker in this process until SIGINT/SIGTERM."""
    from scorer.worker import run as run_worker  # imported on use: onnxruntime and cv2 load only for the worker

    run_worker(settings)
