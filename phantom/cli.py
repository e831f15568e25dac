"""``feqa phantom ...``: render clips, write datasets, y4m fake-camera clips and contact sheets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import cv2
from tqdm import tqdm

from phantom.dataset import CONTENTS, write_neuroface, write_pfed5
from phantom.face import Phantom
from phantom.plan import IDENTITIES, Cohort
from phantom.sheet import contact_sheet, spread_indices
from phantom.spec import APPEARANCES, PROTOCOL_TASKS, PatientSpec
from phantom.traits import POPULATIONS
from phantom.video import write_video, write_y4m


@contextmanager
def _bar(total: int | None, desc: str) -> Iterator[tqdm]:
    with tqdm(total=total, desc=desc, unit="frame", leave=False) as bar:
        yield bar


def _phantom(
    seed: int,
    protocol: str,
    severity: float | None,
    palsy_side: str,
    reps: int,
    tasks: tuple[str, ...],
    size: tuple[int, int],
    fps: float,
    population: str,
    appearance: str,
) -> Phantom:
    if severity is None:
        severity = {"pfed5": 2.0, "neuroface": 3.0, "palsy": 2.0}[protocol]
    try:
        spec = PatientSpec(
            seed=seed,
            protocol=protocol,
            severity=severity,
            palsy_side=palsy_side,
            reps=reps,
            tasks=tasks,
            population=population,
            appearance=appearance,
        )
        return Phantom(spec, size[0], size[1], fps)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _patient_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--seed", type=int, default=0, show_default=True, help="identity and motion seed"),
        click.option("--protocol", type=click.Choice(sorted(PROTOCOL_TASKS)), default="pfed5", show_default=True),
        click.option(
            "--severity",
            type=float,
            default=None,
            help="label on the protocol's scale (pfed5 0-4, neuroface 1-5, palsy 0-3)",
        ),
        click.option("--palsy-side", type=click.Choice(["left", "right"]), default="left", show_default=True),
        click.option("--reps", type=int, default=3, show_default=True),
        click.option("--task", "tasks", multiple=True, help="restrict to these tasks (repeatable)"),
        click.option("--size", type=(int, int), default=(640, 480), show_default=True, help="WIDTH HEIGHT"),
        click.option("--fps", type=float, default=30.0, show_default=True),
        click.option(
            "--population",
            type=click.Choice(POPULATIONS),
            default="standard",
            show_default=True,
            help="trait ranges: standard, or timing / amplitude widened",
        ),
        click.option(
            "--appearance",
            type=click.Choice(APPEARANCES),
            default="cartoon",
            show_default=True,
            help="cartoon (fast) or photo (a real portrait warped onto the moving mesh)",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group("phantom")
def phantom() -> None:
    """Synthetic patients with known severity: clips, datasets, fake-camera files."""


@phantom.command("render")
@_patient_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="output .mp4")
@click.option("--frames", type=int, default=None, help="only the first N frames")
def render_cmd(
    seed: int,
    protocol: str,
    severity: float | None,
    palsy_side: str,
    reps: int,
    tasks: tuple[str, ...],
    size: tuple[int, int],
    fps: float,
    population: str,
    appearance: str,
    out: Path,
    frames: int | None,
) -> None:
    """Render a clip to mp4 with a ground-truth sidecar (.truth.npz)."""
    ph = _phantom(seed, protocol, severity, palsy_side, reps, tasks, size, fps, population, appearance)
    stop = ph.n_frames if frames is None else min(frames, ph.n_frames)
    with _bar(stop, "render") as bar:
        side = write_video(ph, out, 0, stop, progress=bar.update)
    click.echo(f"{out} ({stop} frames, {size[0]}x{size[1]} @ {fps:g} fps); truth in {side}")


@phantom.command("y4m")
@_patient_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="output .y4m")
@click.option("--frames", type=int, default=None, help="only the first N frames (y4m is 1.5 bytes/pixel/frame)")
def y4m_cmd(
    seed: int,
    protocol: str,
    severity: float | None,
    palsy_side: str,
    reps: int,
    tasks: tuple[str, ...],
    size: tuple[int, int],
    fps: float,
    population: str,
    appearance: str,
    out: Path,
    frames: int | None,
) -> None:
    """Write a y4m clip for Chromium's --use-file-for-fake-video-capture."""
    ph = _phantom(seed, protocol, severity, palsy_side, reps, tasks, size, fps, population, appearance)
    stop = ph.n_frames if frames is None else min(frames, ph.n_frames)
    with _bar(stop, "y4m") as bar:
        write_y4m(ph, out, 0, stop, progress=bar.update)
    click.echo(f"{out} ({stop} frames)")


@phantom.command("sheet")
@_patient_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="output .png")
@click.option("--count", type=int, default=12, show_default=True, help="frames on the sheet")
@click.option("--columns", type=int, default=4, show_default=True)
def sheet_cmd(
    seed: int,
    protocol: str,
    severity: float | None,
    palsy_side: str,
    reps: int,
    tasks: tuple[str, ...],
    size: tuple[int, int],
    fps: float,
    population: str,
    appearance: str,
    out: Path,
    count: int,
    columns: int,
) -> None:
    """Contact-sheet PNG of a clip with the true landmarks drawn."""
    if count < 1 or columns < 1:
        raise click.BadParameter("--count and --columns must be at least 1")
    ph = _phantom(seed, protocol, severity, palsy_side, reps, tasks, size, fps, population, appearance)
    indices = spread_indices(ph, count)
    with _bar(len(indices), "sheet") as bar:
        sheet = contact_sheet(ph, indices, columns=columns, progress=bar.update)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet[:, :, ::-1]):
        raise click.ClickException(f"could not write {out}")
    click.echo(f"{out} ({len(indices)} frames)")


@phantom.command("dataset")
@click.option("--layout", type=click.Choice(["pfed5", "neuroface"]), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="dataset root")
@click.option("--subjects", type=int, default=4, show_default=True)
@click.option("--clips-per-task", type=int, default=1, show_default=True, help="pfed5: clips per subject and task")
@click.option("--reps", type=int, default=3, show_default=True, help="neuroface: repetitions per video")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=(int, int), default=(640, 480), show_default=True, help="render size before the 256 crop")
@click.option("--fps", type=float, default=None, help="default 25 (pfed5) or 50 (neuroface)")
@click.option(
    "--contents",
    type=click.Choice(CONTENTS),
    default="crops",
    show_default=True,
    help="crops: 256 crops + trajectory/colour .npy (the distributed form); trajectories: the same .npy and label "
    "files without the crop frames (enough for model.rgb = false and the baselines); videos: full-frame source mp4s "
    "only (the trainer landmarks them with the tracker); both: crops and videos",
)
@click.option(
    "--task",
    "tasks",
    multiple=True,
    help="pfed5: write only these tasks' clips (repeatable), each the very clip the whole set holds",
)
@click.option(
    "--population",
    type=click.Choice(POPULATIONS),
    default="standard",
    show_default=True,
    help="subject trait ranges: standard; timing (speed, reaction, hold and clip margins widened, no slowing with "
    "severity: a timing-decoupled set); amplitude (expressiveness x0.35-1.65: an amplitude-decoupled set)",
)
@click.option(
    "--identities",
    type=click.Choice(IDENTITIES),
    default="train",
    show_default=True,
    help="held-out: identity seeds from a range no train dataset of any seed uses (unseen faces and traits)",
)
@click.option("--appearance", type=click.Choice(APPEARANCES), default="cartoon", show_default=True)
@click.option(
    "--nuisance/--no-nuisance",
    default=True,
    show_default=True,
    help="occlusions, lighting changes, tremor, spontaneous expressions, asymmetry, head turns (off: a clean face)",
)
def dataset_cmd(
    layout: str,
    out: Path,
    subjects: int,
    clips_per_task: int,
    reps: int,
    seed: int,
    size: tuple[int, int],
    fps: float | None,
    contents: str,
    tasks: tuple[str, ...],
    population: str,
    identities: str,
    appearance: str,
    nuisance: bool,
) -> None:
    """Write a whole synthetic dataset in the PFED5 or Toronto NeuroFace on-disk layout.

    For the acceptance of a model (README, "Fair phantom"): a training set, a held-out-identities set
    (--identities held-out), a timing-decoupled set (--population timing) and an amplitude-decoupled set
    (--population amplitude), each with its own --seed.
    """
    if tasks and layout != "pfed5":
        raise click.BadParameter("--task is for the pfed5 layout (a NeuroFace plan draws every task in turn)")
    try:
        cohort = Cohort(population=population, appearance=appearance, identities=identities, nuisance=nuisance)
        with _bar(None, layout) as bar:
            if layout == "pfed5":
                write_pfed5(
                    out,
                    subjects,
                    clips_per_task,
                    seed,
                    size[0],
                    size[1],
                    fps or 25.0,
                    bar.update,
                    contents,
                    cohort,
                    only=tasks,
                )
            else:
                write_neuroface(
                    out,
                    subjects,
                    reps,
                    seed,
                    size[0],
                    size[1],
                    fps or 50.0,
                    progress=bar.update,
                    contents=contents,
                    cohort=cohort,
                )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(f"{layout} dataset at {out}")
