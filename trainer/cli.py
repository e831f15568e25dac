"""``feqa prepare | train | evaluate | export``: the trainer's click commands (the composition root registers them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from common.errors import FeqaError
from common.logs import setup_logging


@click.group(name="trainer")
def cli() -> None:
    """Train, evaluate and export scoring models (TraMP-Former, QAFE-Net)."""


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
        note = f" (after {r.restarts} restart(s) for a constant output, seed {r.seed})" if r.restarts else ""
        if r.dead_output:
            note = f" (CONSTANT OUTPUT: stopped, seed {r.seed}, no restart left)"
        rho = f"validation Spearman {r.best_val_spearman:.3f}"
        click.echo(f"{r.expression:>14}: best epoch {r.best_epoch}, {rho}{note}")


@cli.command()
@click.option("-c", "--config", "layers", multiple=True, help="override layer: a TOML file or a bundled name (small)")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="override one value")
def prepare(layers: tuple[str, ...], sets: tuple[str, ...]) -> None:
    """Build the feature cache a training run will read (landmarking source videos with the tracker), and report
    which clips are ready and which are left out and why. `feqa train` does this itself; run it first to check a
    dataset, or to landmark once before trying several configs."""
    from trainer.builders import heatmap_spec, model_config
    from trainer.config import resolve
    from trainer.data.dataset import load_dataset

    try:
        cfg = resolve(list(layers), list(sets))
        data = load_dataset(cfg, heatmap_spec(model_config(cfg, "")))
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
@click.option(
    "--ensemble",
    "members",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="another run of the same data (e.g. another train.seed): also score the mean of RUN_DIR's and these runs' "
    "calibrated predictions on every set; figures go to ensemble.json",
)
def evaluate(run_dir: Path, bootstrap: int, extra: tuple[str, ...], members: tuple[Path, ...]) -> None:
    """Test-set metrics and plots for a finished run, raw and calibrated, beside the trivial baselines.

    Calibrated figures use each checkpoint's validation-fitted calibration (fitted when training finished); a
    checkpoint without one comes from an unfinished run: finish it with `feqa train ... --resume`. The baselines
    (trainer.baselines: clip length, one distance, a linear fit on motion features, displacement) are fitted on the
    run's training subjects and scored on the same clips as the model.
    """
    from trainer.evaluate import evaluate as run_eval
    from trainer.report import bound_lines, comparison_lines

    sets = _named_roots(extra)
    ensemble: dict[str, dict[str, Any]] = {}
    try:
        results = run_eval(run_dir, bootstrap=bootstrap, extra=sets)
        if members:
            from trainer.ensemble import evaluate_ensemble

            ensemble = evaluate_ensemble([run_dir, *members], bootstrap=bootstrap, extra=sets)
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from exc
    out = results["test"]
    for expr, m in out["expressions"].items():
        lo, hi = m["spearman_ci"]
        c = m["calibration"]
        click.echo(
            f"{expr:>14}: raw        Spearman {m['spearman']:.3f} [{lo:.3f}, {hi:.3f}]  MAE {m['mae']:.3f}  "
            f"RMSE {m['rmse']:.3f}  Pearson {m['pearson']:.3f}"
        )
        click.echo(
            f"{'':>14}  calibrated Spearman {m['spearman_calibrated']:.3f}  MAE {m['mae_calibrated']:.3f}  "
            f"RMSE {m['rmse_calibrated']:.3f}  (scale {c['scale']:.3f}, offset {c['offset']:.3f}, "
            f"fitted on {c['fitted_on']}, {c['n']} clips)"
        )
        base = "  ".join(f"{name} {b['spearman']:.3f}" for name, b in m["baselines"].items())
        click.echo(f"{'':>14}  {m['family']} vs baselines (test Spearman, same clips): {base}  "
                   f"margin {m['margin_over_baselines']:+.3f}")  # fmt: skip
    click.echo(f"{'mean':>14}: Spearman {out['mean_spearman']:.3f}")
    report: list[str] = []
    for name, res in results.items():
        title = "test subjects" if name == "test" else f"{name} ({sets[name]}, every clip)"
        report += ["", *comparison_lines(f"model beside the baselines on {title}:", res["expressions"])]
        for expr, m in res["expressions"].items():
            lo, hi = m["spearman_ci"]
            report.append(f"{expr:>14}: model raw Spearman {m['spearman']:.3f}, clip bootstrap [{lo:.3f}, {hi:.3f}]")
            if "against_latent" in m:
                a = m["against_latent"]
                report.append(f"{'':>14}  calibrated = {a['slope']:.3f} x latent severity {a['offset']:+.3f} "
                              f"(Pearson {a['pearson']:.3f})")  # fmt: skip
        report += bound_lines(f"the phantom's bound on {title} (* reaches the target MAE):", res["expressions"])
    for name, res in ensemble.items():
        title = "test subjects" if name == "test" else f"{name} ({sets[name]}, every clip)"
        runs = ", ".join(str(r) for r in (run_dir, *members))
        report += ["", *comparison_lines(f"seed ensemble (mean of calibrated predictions of {runs}) beside the "
                                         f"baselines on {title}:", res["expressions"])]  # fmt: skip
    if ensemble:
        (run_dir / "ensemble.json").write_text(json.dumps(ensemble, indent=1))
    for line in report:
        click.echo(line)
    (run_dir / "report.txt").write_text("\n".join(report[1:]) + "\n")
    click.echo(f"\nthe tables above are in {run_dir / 'report.txt'}")


@cli.command()
@click.argument("source", type=click.Path(path_type=Path, exists=True))
@click.option("--models-dir", type=click.Path(path_type=Path), default=Path("models"), show_default=True)
@click.option("--version", "version", default="1", show_default=True)
@click.option("--name", default="", help="manifest name (default <family>_<task>)")
def export(source: Path, models_dir: Path, version: str, name: str) -> None:
    """ONNX graphs (frame, window, clip) + manifest.json into MODELS_DIR/<protocol>/<task>/<version>/, parity-checked
    against torch. SOURCE is a run directory (every <task>/best.pt in it) or one best.pt: a checkpoint carries
    everything the artifact needs (model, protocol, task, label scale, fps, landmarker, calibration).

    The window and clip graphs output ``score`` (calibrated with the checkpoint's validation-fitted calibration,
    clamped to the label scale) and ``raw``. Test metrics come from the run's metrics.json when `feqa evaluate` ran.
    """
    from trainer import checkpoint
    from trainer.checkpoint import BEST
    from trainer.export import export as run_export

    paths = [source] if source.is_file() else sorted(source.glob(f"*/{BEST}"))
    if not paths:
        raise click.ClickException(f"no {BEST} under {source}")
    metrics_path = (source.parent.parent if source.is_file() else source) / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text())["expressions"] if metrics_path.is_file() else {}
        for path in paths:
            ckpt = checkpoint.read(path)
            ckpt.require_calibration(path)
            m = metrics.get(ckpt.task, {})
            keys = ("spearman", "mae", "rmse", "pearson", "spearman_calibrated", "mae_calibrated", "rmse_calibrated")
            res = run_export(ckpt, models_dir, version=version, name=name,
                             metrics={k: float(m[k]) for k in keys if k in m})  # fmt: skip
            cal = res.manifest.calibration
            worst = max(res.max_abs_diff.values())
            click.echo(
                f"{ckpt.task:>14}: {ckpt.family} -> {res.folder} (max abs diff vs torch {worst:.1e}; calibration "
                f"scale {cal.scale:.3f} offset {cal.offset:.3f}, fitted on {cal.fitted_on})"
            )
    except FeqaError as exc:
        raise click.ClickException(str(exc)) from exc
