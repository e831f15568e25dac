"""Trivial baselines on a phantom test set: the bar every model must clear (design.md §1, trainer.baselines).

Per task: a constant (the training median), clip length alone, one landmark distance, and a small ridge fit on six
hand-made motion features, each fitted on the training subjects and scored on the test subjects (Spearman and MAE),
beside two ceilings: the highest Spearman any untied score can reach against the test labels, and, for a phantom
set, the rater ceiling (Spearman of the face's latent severity against the rater's label, which no reader of the
face can beat). Every baseline's Spearman has a 95 % subject-bootstrap interval (whole subjects resampled: one
subject's clips share its traits and severity level, so they are not independent evidence). Without ``--root`` a
phantom PFED5 set is written to a temporary folder first (``--quick``: 28 subjects with one clip per task, 8 of
them test subjects). With ``--run`` the model's figures from that run's ``metrics*.json`` (``feqa evaluate RUN
[--on NAME=ROOT]``) stand beside the baselines as ratios (model MAE over the best baseline's; below 0.8 is the
acceptance bar). On phantom sets a second table per set gives the phantom's bound (:mod:`trainer.bound`): every
oracle reader of the hidden truth, fitted on the same training clips, beside the target MAE (0.8 x the best
baseline's); ``--decay-noise`` is the fade reader's reading noise.

    python benchmarks/baselines.py [--quick] [--json PATH] [--root DATASET] [--layout pfed5|neuroface]
                                   [--on NAME=ROOT ...] [--run RUN_DIR] [--decay-noise IOD]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name would hide the packages.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import click  # noqa: E402
import numpy as np  # noqa: E402

from common import features  # noqa: E402
from phantom.dataset import write_neuroface, write_pfed5  # noqa: E402
from trainer.baselines import (  # noqa: E402
    BASELINES,
    ClipView,
    baseline_predictions,
    best_baseline,
    score_baselines,
    spearman_ceiling,
)
from trainer.bound import DECAY_NOISE_IOD, bound_of, phantom_clip_specs  # noqa: E402
from trainer.data.layouts import read_layout  # noqa: E402
from trainer.data.records import ClipRecord  # noqa: E402
from trainer.data.splits import split_by_subject  # noqa: E402
from trainer.metrics import spearman, subject_bootstrap_ci  # noqa: E402
from trainer.report import TARGET_SHARE, bound_lines, comparison_lines  # noqa: E402

SCALES = {"pfed5": (0.0, 4.0, 25.0), "neuroface": (1.0, 5.0, 50.0)}
# The generated set: (subjects, clips per task) for --quick and the default. A subject's clips share its traits and
# its severity level, so a set's independent evidence is its test subjects, not its clips: the quick set spends its
# rendering on many subjects with one clip each (8 test subjects) rather than few with several (it was 14 x 2,
# 4 test subjects, where clip length ranked smile at 0.78 by chance; over 200 seeds of that plan the length
# Spearman averaged 0.05 with sd 0.42). Every Spearman comes with a subject-bootstrap interval.
GENERATED = {True: (28, 1), False: (41, 3)}
BOOTSTRAP_REPS = 1000


def _view(record: ClipRecord) -> ClipView:
    if record.trajectory is None or record.colour is None:
        raise click.ClickException(f"clip {record.clip_id} has no trajectory/colour files (write the set with crops)")
    traj = features.trajectory_from_files(np.load(record.trajectory), np.load(record.colour))
    return ClipView(traj, record.n_frames, record.label)


def _latent(root: Path, layout: str) -> dict[str, float]:
    """Clip id -> the latent severity the phantom's face showed (phantom_clips.csv); empty for other data."""
    return {clip_id: float(spec.severity) for clip_id, (spec, _) in phantom_clip_specs(root, layout).items()}


def _by_expression(records: list[ClipRecord]) -> dict[str, list[ClipRecord]]:
    out: dict[str, list[ClipRecord]] = {}
    for r in records:
        out.setdefault(r.expression, []).append(r)
    return out


def _score(
    train: dict[str, list[ClipRecord]],
    fit_root: Path,
    test: dict[str, list[ClipRecord]],
    layout: str,
    root: Path,
    decay_noise_iod: float,
) -> dict[str, dict[str, Any]]:
    lo, hi, fps = SCALES[layout]
    latent = _latent(root, layout)
    out: dict[str, dict[str, Any]] = {}
    for expr, clips in test.items():
        fit, views = [_view(r) for r in train[expr]], [_view(r) for r in clips]
        scores = score_baselines(fit, views, expr, fps, (lo, hi))
        labels = [r.label for r in clips]
        subjects = [r.subject for r in clips]
        preds = baseline_predictions(fit, views, expr, fps)
        intervals = {
            k: subject_bootstrap_ci(v, labels, subjects, "spearman", BOOTSTRAP_REPS, 0) for k, v in preds.items()
        }
        known = [(latent[r.clip_id], r.label) for r in clips if r.clip_id in latent]
        out[expr] = {
            "n": len(clips),
            "subjects": len(set(subjects)),
            "spearman_ci": intervals,
            "ceiling_spearman": spearman_ceiling(labels),
            "rater_ceiling": spearman(*zip(*known, strict=True)) if len(known) > 1 else float("nan"),
            "baselines": {k: {"spearman": v.spearman, "mae": v.mae} for k, v in scores.items()},
            "best_baseline": best_baseline(scores).name,
            "bound": bound_of(train[expr], fit_root, clips, root, layout, (lo, hi), decay_noise_iod),
        }
    return out


def _with_model(sets: dict[str, dict[str, dict[str, Any]]], run: Path) -> None:
    for name, exprs in sets.items():
        path = run / ("metrics.json" if name == "test" else f"metrics_{name}.json")
        if not path.is_file():
            raise click.ClickException(f"{path} missing: run `feqa evaluate {run}` (with --on {name}=ROOT) first")
        model = json.loads(path.read_text())["expressions"]
        for expr, m in exprs.items():
            if expr in model:
                best = m["baselines"][m["best_baseline"]]["mae"]
                m["spearman_calibrated"] = model[expr]["spearman_calibrated"]
                m["mae_calibrated"] = model[expr]["mae_calibrated"]
                m["mae_vs_best_baseline"] = m["mae_calibrated"] / best if best > 0 else float("inf")


@click.command()
@click.option("--quick", is_flag=True, help="a small generated set (< 60 s)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--root", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None)
@click.option("--layout", type=click.Choice(sorted(SCALES)), default="pfed5", show_default=True)
@click.option("--on", "extra", multiple=True, metavar="NAME=ROOT", help="score the baselines on every clip of it too")
@click.option("--run", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None)
@click.option(
    "--decay-noise",
    type=float,
    default=DECAY_NOISE_IOD,
    show_default=True,
    help="the decay reader's reading noise (sd, inter-ocular distances)",
)
def main(
    quick: bool,
    json_path: Path | None,
    root: Path | None,
    layout: str,
    extra: tuple[str, ...],
    run: Path | None,
    decay_noise: float,
) -> None:
    """Print the baselines per task (and the model beside them with --run); optionally write flat JSON."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if root is None:
            root = Path(tmp) / "phantom"
            n, clips = GENERATED[quick]
            if layout == "pfed5":
                write_pfed5(root, n_subjects=n, clips_per_task=clips, seed=101, width=160, height=120)
            else:
                write_neuroface(root, n_subjects=12 if quick else 36, reps=2, seed=101, width=160, height=120)
        records = read_layout(layout, root)
        split = split_by_subject(records, val_fraction=0.2, test_fraction=0.25, seed=0)
        train = _by_expression([*split.train, *split.val])  # the baselines get every non-test subject
        sets = {"test": _score(train, root, _by_expression(list(split.test)), layout, root, decay_noise)}
        for item in extra:
            name, _, other = item.partition("=")
            test = _by_expression(read_layout(layout, Path(other)))
            sets[name] = _score(train, root, test, layout, Path(other), decay_noise)
    if run is not None:
        _with_model(sets, run)
    figures: dict[str, float] = {}
    for name, exprs in sets.items():
        subjects = len({r.subject for r in [*split.train, *split.val]})
        for line in comparison_lines(f"{name}: baselines fitted on {subjects} training subjects", exprs):
            click.echo(line)
        for line in bound_lines(f"{name}: the phantom's bound (oracle readers fitted on the same clips)", exprs):
            click.echo(line)
        for expr, m in exprs.items():
            click.echo(f"{'':>14} {expr}: rater ceiling {m['rater_ceiling']:.3f}, best baseline {m['best_baseline']}")
            ci = m["spearman_ci"]
            click.echo(
                f"{'':>14} {'':>{len(expr)}}  rho 95% over {m['subjects']} subjects: "
                + ", ".join(f"{b} [{ci[b][0]:+.2f}, {ci[b][1]:+.2f}]" for b in BASELINES if b != "constant")
            )
            figures[f"{name}_{expr}_ceiling_spearman"] = round(m["ceiling_spearman"], 4)
            figures[f"{name}_{expr}_rater_ceiling"] = round(m["rater_ceiling"], 4)
            for b in BASELINES:
                figures[f"{name}_{expr}_{b}_spearman"] = round(m["baselines"][b]["spearman"], 4)
                figures[f"{name}_{expr}_{b}_mae"] = round(m["baselines"][b]["mae"], 4)
                figures[f"{name}_{expr}_{b}_spearman_lo"] = round(m["spearman_ci"][b][0], 4)
                figures[f"{name}_{expr}_{b}_spearman_hi"] = round(m["spearman_ci"][b][1], 4)
            figures[f"{name}_{expr}_target_mae"] = round(TARGET_SHARE * m["baselines"][m["best_baseline"]]["mae"], 4)
            for o, v in m["bound"].items():
                figures[f"{name}_{expr}_{o}_spearman"] = round(v["spearman"], 4)
                figures[f"{name}_{expr}_{o}_mae"] = round(v["mae"], 4)
            if "mae_vs_best_baseline" in m:
                figures[f"{name}_{expr}_model_spearman"] = round(m["spearman_calibrated"], 4)
                figures[f"{name}_{expr}_model_mae"] = round(m["mae_calibrated"], 4)
                figures[f"{name}_{expr}_model_mae_vs_best_baseline"] = round(m["mae_vs_best_baseline"], 4)
        click.echo("")
    figures["seconds"] = round(time.perf_counter() - t0, 1)
    if json_path is not None:
        json_path.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
