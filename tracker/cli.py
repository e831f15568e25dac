"""The ``tracker`` click group (registered under ``feqa`` by the composition root)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from common.errors import FeqaError
from common.logs import setup_logging
from tracker.settings import TrackerSettings


@click.group(name="tracker")
def cli() -> None:
    """Face and 106-landmark tracker."""


@cli.command()
@click.option("--landmarker", type=click.Choice(["mediapipe", "insightface", "phantom"]), default=None)
@click.option("--model-dir", type=click.Path(path_type=Path), default=None, help="insightface model pack directory")
def worker(landmarker: str | None, model_dir: Path | None) -> None:
    """Run a tracker worker (settings from FEQA_TRACKER_*; options override them)."""
    from tracker.worker import run

    overrides: dict[str, object] = {}
    if landmarker:
        overrides["landmarker"] = landmarker
    if model_dir:
        overrides["model_dir"] = model_dir
    settings = TrackerSettings(**overrides)  # type: ignore[arg-type]
    setup_logging(settings.common.log_level, settings.common.log_format)
    try:
        run(settings)
    except FeqaError as exc:
        click.echo(f"tracker: {exc}", err=True)
        sys.exit(2)


@cli.command("check-models")
@click.option("--model-dir", type=click.Path(path_type=Path), default=None, help="insightface model pack directory")
def check_models(model_dir: Path | None) -> None:
    """Load the insightface pack with the configured providers and print what was loaded."""
    from tracker.insightface_landmarker import InsightfaceLandmarker

    settings = TrackerSettings(model_dir=model_dir) if model_dir else TrackerSettings()
    try:
        lm = InsightfaceLandmarker.from_settings(settings)
    except FeqaError as exc:
        click.echo(f"tracker: {exc}", err=True)
        sys.exit(2)
    info = {
        "model_dir": str(settings.model_dir),
        "detector_strides": list(lm.detector.strides),
        "detector_input": [lm.detector.size_w, lm.detector.size_h],
        "landmark_input": lm.landmark.size,
        "landmark_norm": [lm.landmark.mean, lm.landmark.std],
        "providers": list(settings.providers),
    }
    click.echo(json.dumps(info))


@cli.command("fetch-models")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="models directory (default: FEQA_TRACKER_MEDIAPIPE_DIR, models/mediapipe)",
)
@click.option(
    "--wheel",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="use this mediapipe-0.10.21 wheel file instead of downloading it (checked against its sha256)",
)
@click.option(
    "--parity",
    type=click.Choice(["auto", "require", "skip"]),
    default="auto",
    show_default=True,
    help="check each converted model against LiteRT (auto: when the dev extra is installed)",
)
@click.option("--force", is_flag=True, help="fetch and convert again even if the directory is complete")
def fetch_models(directory: Path | None, wheel: Path | None, parity: str, force: bool) -> None:
    """Get the MediaPipe face models (from the pinned mediapipe wheel, never installed), verify, convert to ONNX."""
    from tracker.mediapipe.fetch import fetch_models as fetch

    target = directory or TrackerSettings().mediapipe_dir
    try:
        fetch(target, wheel=wheel, parity=parity, force=force, say=click.echo)
    except FeqaError as exc:
        click.echo(f"tracker fetch-models: {exc}", err=True)
        sys.exit(2)


@cli.command("make-test-models")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=0)
def make_test_models(directory: Path, seed: int) -> None:
    """Write random-weight det_10g.onnx and 2d106det.onnx (real shapes, no pretrained weights) for tests/demos."""
    from tracker.testing.onnx_models import write_model_pack

    write_model_pack(directory, seed=seed)
    click.echo(str(directory))
