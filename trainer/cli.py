"""``feqa prepare | train | evaluate | export``: the trainer's click commands (the composition root registers them)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from common.errors import FeqaError
from common.logs import setup_logging


@click.group(name="trainer")
def cli() -> None:
    """Train, evaluate and export TraMP-Former models."""


@cli.command()
@click.option("-c", "--config", "layers", multiple=True, help="override layer: a TOML file or a bundled name (small)")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="override one value")
@click.option("--run-dir", type=click.Path(path_type=Path), required=True, help="where checkpoints and plots go")
@click.option("--resume", is_flag=True, help="continue from each expression's last.pt")
@click.option("-v", "--verbose", is_flag=True, help="log every epoch (loss, validation Spearman) to stderr")
def train(layers: tuple[str, ...], sets: tuple[str, ...], run_dir: Path, resume: bool, verbose: bool) -> None:
    """Train one model per expression; the best epoch is chosen on validation subjects."""
    from trainer.config import resolve
    from trainer.train import train as run_training

    if verbose:
        setup_logging("INFO")
    try:
        results = run_training(resolve(list(layers), list(sets)), run_dir, resume=resume)
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from exc
    for r in results:
        click.echo(f"{r.expression:>14}: best epoch {r.best_epoch}, validation Spearman {r.best_val_spearman:.3f}")


@cli.command()
@click.option("-c", "--config", "layers", multiple=True, help="override layer: a TOML file or a bundled name (small)")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="override one value")
def prepare(layers: tuple[str, ...], sets: tuple[str, ...]) -> None:
    """Build the feature cache a training run will read (landmarking source videos with the tracker), and report
    which clips are ready and which are left out and why. `feqa train` does this itself; run it first to check a
    dataset, or to landmark once before trying several configs."""
    from trainer.config import resolve
    from trainer.runs import load_dataset

    try:
        data = load_dataset(resolve(list(layers), list(sets)))
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from exc
    for expr, d in data.expressions.items():
        click.echo(f"{expr:>14}: {len(d.train)} train / {len(d.val)} validation / {len(d.test)} test clips")
    ready = sum(len(d.train) + len(d.val) + len(d.test) for d in data.expressions.values())
    click.echo(f"{ready} clips ready ({data.computed} computed now), {len(data.skipped)} left out")
    for s in data.skipped:
        click.echo(f"  left out {s.clip_id}: {s.reason}")


def _named_roots(items: tuple[str, ...]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        name, sep, root = item.partition("=")
        if not sep or not name.isidentifier() or not root:
            raise click.BadParameter(f"expected NAME=ROOT with NAME a plain word, got {item!r}", param_hint="--on")
        if not Path(root).is_dir():
            raise click.BadParameter(f"{root} is not a directory", param_hint="--on")
        out[name] = Path(root)
    return out


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--bootstrap", default=1000, show_default=True, help="bootstrap resamples for the confidence intervals")
@click.option(
    "--on",
    "extra",
    multiple=True,
    metavar="NAME=ROOT",
    help="also score every clip of another dataset of the run's layout (an acceptance set: held-out identities, "
    "timing- or amplitude-decoupled); figures go to metrics_NAME.json",
)
def evaluate(run_dir: Path, bootstrap: int, extra: tuple[str, ...]) -> None:
    """Test-set metrics and plots for a finished run, raw and calibrated, beside the trivial baselines.

    Calibrated figures use each checkpoint's validation-fitted calibration; a checkpoint without one (saved before
    calibrations existed) gets one fitted on its validation clips and saved into best.pt. The baselines (clip length,
    one distance, a linear fit on motion features) are fitted on the run's training subjects and scored on the same
    clips as the model.
    """
    from trainer.evaluate import evaluate as run_eval
    from trainer.report import comparison_lines

    sets = _named_roots(extra)
    try:
        results = run_eval(run_dir, bootstrap=bootstrap, extra=sets)
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from exc
    out = results["test"]
    for expr, m in out["expressions"].items():
        lo, hi = m["spearman_ci"]
        c = m["calibration"]
        click.echo(
            f"{expr:>14}: raw        Spearman {m['spearman']:.3f} [{lo:.3f}, {hi:.3f}]  MAE {m['mae']:.3f}  "
            f"RMSE {m['rmse']:.3f}"
        )
        click.echo(
            f"{'':>14}  calibrated Spearman {m['spearman_calibrated']:.3f}  MAE {m['mae_calibrated']:.3f}  "
            f"RMSE {m['rmse_calibrated']:.3f}  (scale {c['scale']:.3f}, offset {c['offset']:.3f}, "
            f"fitted on {c['fitted_on']}, {c['n']} clips)"
        )
    click.echo(f"{'mean':>14}: Spearman {out['mean_spearman']:.3f}")
    for name, res in results.items():
        click.echo("")
        title = "test subjects" if name == "test" else f"{name} ({sets[name]}, every clip)"
        for line in comparison_lines(f"model beside the baselines on {title}:", res["expressions"]):
            click.echo(line)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--models-dir", type=click.Path(path_type=Path), default=Path("models"), show_default=True)
@click.option("--name", default="tramp", show_default=True, help="artifact name prefix (<name>_<expression>)")
@click.option("--version", "version", default="1", show_default=True)
def export(run_dir: Path, models_dir: Path, name: str, version: str) -> None:
    """ONNX graphs (frame, window, clip) + manifest.json per expression, parity-checked against torch.

    The window and clip graphs output ``score`` (calibrated with the checkpoint's calibration, clamped to the label
    scale) and ``raw``. A checkpoint without a calibration is exported with the identity (clamp only) and a loud
    warning: run ``feqa evaluate`` on the run first to fit and save one.
    """
    from common.manifest import Calibration
    from trainer.calibration import checkpoint_calibration
    from trainer.config import load_resolved
    from trainer.export import export as run_export
    from trainer.runs import BEST, load_checkpoint

    try:
        cfg = load_resolved(run_dir / "config.toml")
        metrics_path = run_dir / "metrics.json"
        metrics = json.loads(metrics_path.read_text())["expressions"] if metrics_path.is_file() else {}
        experts = sorted(p.parent.name for p in run_dir.glob(f"*/{BEST}"))
        if not experts:
            raise click.ClickException(f"no {BEST} under {run_dir}")
        for expr in experts:
            model, ckpt = load_checkpoint(run_dir / expr / BEST)
            m = metrics.get(expr, {})
            keys = ("spearman", "mae", "rmse", "spearman_calibrated", "mae_calibrated", "rmse_calibrated")
            figures = {k: float(m[k]) for k in keys if k in m}
            figures["val_spearman"] = float(ckpt["val_spearman"])
            label_range = (cfg.data.label_min, cfg.data.label_max)
            calibration = checkpoint_calibration(ckpt)
            if calibration is None:
                calibration = Calibration.identity(*label_range)
                click.echo(
                    f"WARNING: {run_dir / expr / BEST} has no score calibration; exporting the identity (scores "
                    f"only clamped to {label_range}, NOT mapped onto the label scale). Run `feqa evaluate {run_dir}` "
                    "first to fit one on the validation clips.",
                    err=True,
                )
            res = run_export(
                model,
                models_dir / f"{name}_{expr}" / version,
                name=f"{name}_{expr}",
                version=version,
                task=expr,
                protocol=cfg.data.layout,
                fps=cfg.data.fps,
                label_range=label_range,
                metrics=figures,
                data_hash=str(ckpt.get("data_hash", "")),
                calibration=calibration,
                time_index=cfg.model.time_index,
                landmarker=str(ckpt.get("landmarker", "")),
            )
            worst = max(res.max_abs_diff.values())
            click.echo(
                f"{expr:>14}: {res.folder} (max abs diff vs torch {worst:.1e}; calibration scale "
                f"{calibration.scale:.3f} offset {calibration.offset:.3f}, fitted on {calibration.fitted_on})"
            )
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from exc
