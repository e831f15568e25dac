"""``feqa train | evaluate | export``: the trainer's click commands (the composition root registers them)."""

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
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--bootstrap", default=1000, show_default=True, help="bootstrap resamples for the confidence intervals")
def evaluate(run_dir: Path, bootstrap: int) -> None:
    """Test-set metrics and plots for a finished run."""
    from trainer.evaluate import evaluate as run_eval

    try:
        out = run_eval(run_dir, bootstrap=bootstrap)
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from exc
    for expr, m in out["expressions"].items():
        lo, hi = m["spearman_ci"]
        line = (
            f"{expr:>14}: Spearman {m['spearman']:.3f} [{lo:.3f}, {hi:.3f}]  MAE {m['mae']:.3f}  RMSE {m['rmse']:.3f}"
        )
        if "mae_calibrated" in m:
            line += f"  (val-calibrated MAE {m['mae_calibrated']:.3f}  RMSE {m['rmse_calibrated']:.3f})"
        click.echo(line)
    click.echo(f"{'mean':>14}: Spearman {out['mean_spearman']:.3f}")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--models-dir", type=click.Path(path_type=Path), default=Path("models"), show_default=True)
@click.option("--name", default="tramp", show_default=True, help="artifact name prefix (<name>_<expression>)")
@click.option("--version", "version", default="1", show_default=True)
def export(run_dir: Path, models_dir: Path, name: str, version: str) -> None:
    """ONNX graphs (frame, window, clip) + manifest.json per expression, parity-checked against torch."""
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
            figures = {k: float(m[k]) for k in ("spearman", "mae", "rmse") if k in m}
            figures["val_spearman"] = float(ckpt["val_spearman"])
            res = run_export(
                model,
                models_dir / f"{name}_{expr}" / version,
                name=f"{name}_{expr}",
                version=version,
                task=expr,
                protocol=cfg.data.layout,
                fps=cfg.data.fps,
                label_range=(cfg.data.label_min, cfg.data.label_max),
                metrics=figures,
                data_hash=str(ckpt.get("data_hash", "")),
            )
            worst = max(res.max_abs_diff.values())
            click.echo(f"{expr:>14}: {res.folder} (max abs diff vs torch {worst:.1e})")
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from exc
