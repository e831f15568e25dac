"""``feqa train``: the trainer's own command, plus ``--demo DIR``, which builds the demo's models instead
(:func:`infra.demo_models.build_artifacts`; the committed ones: ``feqa train --demo infra/demo_artifacts``).

The demo build lives here, in the composition root, because it drives the phantom, the tracker's landmarker and the
trainer together; the trainer itself knows nothing of the demo."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import click

from trainer.cli import train as trainer_train


def _train_demo(out: Path, recipe: str, tasks: str, workers: int, mediapipe_dir: Path, fresh: bool) -> None:
    from infra.demo_models import TINY_TRAINING, DemoTraining, build_artifacts

    if not (mediapipe_dir / "face_landmark.onnx").is_file():
        raise click.ClickException(f"no MediaPipe models in {mediapipe_dir}; run bash infra/setup.sh (it fetches them)")
    cfg = TINY_TRAINING if recipe == "tiny" else DemoTraining()
    chosen = tuple(t.strip() for t in tasks.split(",") if t.strip())
    cfg = dataclasses.replace(cfg, tasks=chosen) if chosen else cfg
    click.echo(f"building the demo models ({recipe} recipe, {workers} at a time) into {out}")
    record = build_artifacts(out, mediapipe_dir, cfg, workers, click.echo, fresh=fresh)
    for task, rho in record["spearman"].items():
        click.echo(f"  {task:<14} validation Spearman {rho:.3f} (held-out phantom subjects; clip-length baseline 0)")
    click.echo(f"demo models built in {record['seconds']:.0f} s: {out}")


def _run(**kw: Any) -> None:
    demo_dir: Path | None = kw.pop("demo_dir")
    demo = (kw.pop("demo_recipe"), kw.pop("demo_tasks"), kw.pop("workers"), kw.pop("mediapipe_dir"),
            kw.pop("demo_fresh"))  # fmt: skip
    if demo_dir is not None:
        recipe, tasks, workers, mediapipe_dir, fresh = demo
        _train_demo(demo_dir, recipe, tasks, workers, mediapipe_dir, fresh)
        return
    if kw.get("run_dir") is None:
        raise click.UsageError("--run-dir is required (or --demo DIR)")
    assert trainer_train.callback is not None
    trainer_train.callback(**kw)


def _params() -> list[click.Parameter]:
    own = []
    for param in trainer_train.params:
        param = copy.copy(param)
        if param.name == "run_dir":
            param.required = False  # --demo needs none
        own.append(param)
    return [
        *own,
        click.Option(["--demo", "demo_dir"], type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="instead: build the demo models into this folder (the committed: infra/demo_artifacts)"),
        click.Option(["--demo-recipe"], type=click.Choice(["demo", "tiny"]), default="demo", show_default=True,
                     help="with --demo: the demo recipe, or a tiny one (seconds; checks the command)"),
        click.Option(["--demo-tasks"], default="", help="with --demo: these pfed5 tasks only (comma-separated; "
                     "default all)"),
        click.Option(["--workers"], default=2, show_default=True, type=click.IntRange(1),
                     help="with --demo: tasks at a time"),
        click.Option(["--demo-fresh"], is_flag=True, help="with --demo: train every task anew, even one whose "
                     "artifact in DIR was built from the same recipe, configuration and landmarker"),
        click.Option(["--mediapipe-dir"], type=click.Path(file_okay=False, path_type=Path),
                     default=Path("models/mediapipe"), show_default=True,
                     help="with --demo: the landmarker's models (the tracker's default)"),
    ]  # fmt: skip


train = click.Command(
    "train",
    callback=_run,
    params=_params(),
    help=(trainer_train.help or "").rstrip() + " With --demo DIR: the demo's five models on photo-real phantom "
    "patients through MediaPipe, and their fingerprint, into DIR.",
)
