"""A phantom PFED5 set where clip length cannot rank severity, and the trivial baselines a model must beat.

The phantom now draws timing independently of severity (issue 11); before that its clips got longer as severity rose
and clip length alone ranked the 16-subject set's test clips at Spearman 0.98, so a model test asserting "rho > 0.5"
could pass on the length leak. Cutting every clip to one length still closes any such leak by construction:
:func:`equalise_lengths` cuts every clip to the length of the shortest one (the movement of the most severe clip
still peaks inside it), leaving amplitude and movement as the only ways to tell severities apart.
The trivial baselines a model must beat are the trainer's own (:func:`trainer.baselines.clip_baselines`, which
``feqa evaluate`` reports beside every model). :func:`export_smile` exports a run trained on the set's smiles.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from common.manifest import Manifest
from phantom.face import Phantom
from phantom.plan import Cohort, plan_pfed5
from trainer.baselines import clip_baselines
from trainer.cli import cli

__all__ = ["clip_baselines", "equalise_lengths", "shortest_planned_clip"]


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def shortest_planned_clip(n_subjects: int, clips_per_task: int, seed: int, fps: float) -> int:
    """The length in frames of the shortest clip of the whole PFED5 plan ``write_pfed5`` would write for these
    arguments (every task), from the phantoms' schedules alone: nothing is rendered."""
    return min(
        seg.end - seg.start
        for clip in plan_pfed5(n_subjects, clips_per_task, seed, Cohort())
        for seg in Phantom(clip.spec, 320, 240, fps).schedule[:1]
    )


def equalise_lengths(root: Path, to: int | None = None) -> int:
    """Cut every clip of a phantom PFED5 layout (frames, trajectory, colour, label files) to the shortest clip's
    length, or to ``to`` frames when given (a layout of some tasks only, cut as the whole plan would be; see
    :func:`shortest_planned_clip`); return that length."""
    label_files = sorted((root / "PFED5").glob("PFED5_*.csv")) + sorted((root / "data").glob("*_41.csv"))
    shortest = min(int(r[2]) for f in label_files for r in _rows(f)[1])
    if to is not None and to > shortest:
        raise ValueError(f"cannot cut clips to {to} frames: the shortest one here has {shortest}")
    n = shortest if to is None else to
    for f in label_files:
        header, rows = _rows(f)
        for r in rows:
            r[2] = str(n)
            if len(r) == 5:
                r[3] = str(round(n / 25.0, 2))
        with f.open("w", newline="") as fh:
            csv.writer(fh).writerows([header, *rows])
    for clip in sorted((root / "PFED5").glob("*/*/")):
        for jpg in sorted(clip.glob("*.jpg"))[n:]:
            jpg.unlink()
    for folder in ("landmarks", "RGB_1x1_fromLK"):
        for npy in (root / folder).rglob("*.npy"):
            np.save(npy, np.load(npy)[:n])
    return n


def export_smile(run_dir: Path, models_dir: Path) -> tuple[Path, Manifest]:
    """``feqa export RUN_DIR`` as version 1 into ``models_dir``: the smile model's folder and its manifest, checked
    to be one this code can serve."""
    result = CliRunner().invoke(cli, ["export", str(run_dir), "--models-dir", str(models_dir), "--version", "1"])
    assert result.exit_code == 0, result.output
    folder = models_dir / "pfed5" / "smile" / "1"
    manifest = Manifest.read(folder)
    manifest.check_compatible()
    return folder, manifest
