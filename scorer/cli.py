"""The ``scorer`` click group (registered under ``feqa`` by the composition root)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from common.errors import FeqaError
from common.logs import setup_logging
from scorer.settings import ScorerSettings


@click.group(name="scorer")
def cli() -> None:
    """Expression-quality scores and kinematics from exported models."""


@cli.command()
@click.option("--models-dir", type=click.Path(path_type=Path), default=None, help="root of <protocol>/<task>/<version>")
def worker(models_dir: Path | None) -> None:
    """Run a scorer worker (settings from FEQA_SCORER_* and FEQA_MODELS_DIR; options override them)."""
    from scorer.worker import run

    settings = _settings(models_dir)
    setup_logging(settings.common.log_level, settings.common.log_format)
    try:
        run(settings)
    except FeqaError as exc:
        click.echo(f"scorer: {exc}", err=True)
        sys.exit(2)


@cli.command()
@click.option("--models-dir", type=click.Path(path_type=Path), default=None, help="root of <protocol>/<task>/<version>")
def models(models_dir: Path | None) -> None:
    """Validate every model under the models directory, as the worker would, and print what it would serve."""
    from scorer.registry import ModelRegistry

    settings = _settings(models_dir)
    setup_logging("WARNING", settings.common.log_format)
    registry = ModelRegistry(settings.common.models_dir, settings.backend_choice())
    serving = registry.scan()
    served = {
        key: {
            "model": m.name,
            "version": m.version,
            "folder": str(m.folder),
            "landmarker": m.manifest.landmarker,
            "backend": m.model.window.description,
        }
        for key, m in sorted(serving.items())
    }
    refused = [{"folder": str(r.folder), "reason": r.reason} for r in registry.refused]
    report = {"models_dir": str(registry.root), "serving": served, "refused": refused}
    click.echo(json.dumps(report, indent=1))
    if registry.refused:
        sys.exit(1)


def _settings(models_dir: Path | None) -> ScorerSettings:
    base = ScorerSettings()
    if models_dir is None:
        return base
    return base.model_copy(update={"common": base.common.model_copy(update={"models_dir": models_dir})})
