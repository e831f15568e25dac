"""How reliably the demo's smile model ranks live browser patients, offline: no browser, no stack.

The browser end-to-end test (tests/integration/test_e2e_browser.py) streams three phantom patients (severities 0, 2,
4), each a fake camera looping the phantom's performance, through the patient page, which times each task itself:
a task clip is ``HOLD_S`` at 10 fps starting wherever the loop happens to be. Its ranking check asks the two smile
task scores' mean to rise by at least the margin from one severity to the next. This measures the same thing on
many held-out phantom identities at once:

- each patient's camera file (the test's own writer, :func:`tests.demo_kit.write_camera`) is played twice over and
  landmarked continuously by the live tracker's pipeline (MediaPipe, one session, as the tracker follows a stream);
- every start frame of one loop gives a task clip of the live length, scored through the scorer's model-input code
  (:func:`common.model_input.model_input`) and the exported window graph (calibrated score);
- a draw is what one test run sees: one patient per severity, two repetitions each (the second starts a
  countdown, a hold and a rest after the first, as on the patient page), ranked with the test's margin.

Printed: per-severity mean and sd of the task scores, the sd of the patients' own means (identity) beside the
typical sd within a patient (the phase the task starts at), the mean score by how much of the clip moves, and the
share of draws that rank. Beside it, the phantom's own bound on that share (:func:`amplitude_bound`): how often an
exact reader of each patient's smile range, with no phase or tracking noise, passes the same check on the same
patients, and how often any reader of the range alone could even order three random patients. ``--quick`` takes 4
identities per severity, else 12.

    python benchmarks/demo_ranking.py [--models DIR] [--quick] [--json PATH] [--identities N] [--seed S]

``DIR`` holds ``pfed5/smile/<version>``: by default the committed demo models (infra/demo_artifacts, the ones the
browser test and ``feqa demo`` serve); ``models/demo`` after ``feqa demo`` trained its own.
JSON keys: ``mean_s<sev>``, ``sd_s<sev>``, ``identity_sd_s<sev>``,
``phase_sd_s<sev>``, ``rank_rate`` (share of draws that rank), ``amplitude_reader_rank_rate``,
``amplitude_order_ceiling``, ``draws``, ``identities``, ``load_avg``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow packages.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import dataclasses
import itertools
import json
import os
import tempfile
import time

import click
import numpy as np
import numpy.typing as npt

from common.manifest import Manifest
from common.model_input import ObservedClip, model_input
from infra.demo_models import ARTIFACTS, DEMO_VERSION, FPS, HEIGHT, WIDTH
from phantom.face import Phantom
from phantom.spec import APPEARANCES, PatientSpec
from scorer.backends import BackendChoice
from scorer.families import ScoringModel, load_model
from tests.demo_kit import BROWSER_REPS as REPS
from tests.demo_kit import BROWSER_SEVERITIES as SEVERITIES
from tests.demo_kit import CAMERA_APPEARANCE, COUNTDOWN_S, HOLD_S, MEDIAPIPE, REST_S, camera_spec, write_camera
from tests.demo_kit import RANK_MARGIN as MARGIN
from trainer.bound import amplitude_of
from trainer.data.landmarking import LandmarkedClip

FIRST_SEED = 30000  # far from every training seed (the demo recipe: 8000-9100) and the browser test's 8500s


@dataclasses.dataclass(frozen=True)
class Patient:
    severity: float
    seed: int
    scores: npt.NDArray[np.float64]  # [n_frames] the task score of the clip starting at each frame of the loop
    moving: npt.NDArray[np.float64]  # [n_frames] share of that clip's frames past the idle lead-in


def _landmark(video: Path, frames: int) -> LandmarkedClip:
    from tracker.settings import TrackerSettings
    from trainer.data.landmarking import VideoLandmarking
    from trainer.data.records import ClipRecord

    landmarking = VideoLandmarking(TrackerSettings(landmarker="mediapipe", mediapipe_dir=MEDIAPIPE))
    record = ClipRecord(video.stem, video.stem, "smile", 0.0, frames, None, None, None, "", video=video)
    (outcome,) = list(landmarking.run([record]))
    if outcome.clip is None:
        raise click.ClickException(f"{video.name}: {outcome.error}")
    return outcome.clip


def measure_patient(
    model: ScoringModel, severity: float, seed: int, work: Path, clip_frames: int, appearance: str = CAMERA_APPEARANCE
) -> Patient:
    """Every live-length task clip of one looping patient, scored as the scorer would."""
    spec = camera_spec(seed, severity, appearance)
    video = work / f"camera-{seed}.y4m"
    n = write_camera(video, spec, loops=2)
    seen = _landmark(video, 2 * n)
    video.unlink()
    phantom = Phantom(spec, WIDTH, HEIGHT, FPS)
    moves = np.array([phantom.truth(i).phase != "idle" for i in range(n)], dtype=np.float64)
    times = seen.times if seen.times is not None else np.arange(2 * n) / FPS
    scores, moving = [], []
    for start in range(n):  # clips starting in the second loop: the tracker has followed the stream for a while
        a = n // 2 + start
        b = a + clip_frames
        clip = ObservedClip.build(times[a:b], seen.landmarks[a:b], seen.colours[a:b], seen.face[a:b])
        mi = model_input(clip, model.spec, rgb="uniform")
        out = model.window.run(model.window_feeds(mi.trajectory, mi.index_t, None))
        scores.append(float(out["score"][0]))
        moving.append(float(moves[np.arange(a, b) % n].mean()))
    return Patient(severity, seed, np.array(scores), np.array(moving))


def draw_rate(
    patients: list[Patient], draws: int, rng: np.random.Generator, gap_frames: int
) -> tuple[float, npt.NDArray[np.float64]]:
    """Share of simulated test runs (a patient per severity, ``REPS`` repetitions) whose means rise by ``MARGIN``
    per step; and those runs' means [draws, severities]."""
    by_sev = {s: [p for p in patients if p.severity == s] for s in SEVERITIES}
    means = np.zeros((draws, len(SEVERITIES)))
    for d in range(draws):
        for j, s in enumerate(SEVERITIES):
            p = by_sev[s][int(rng.integers(len(by_sev[s])))]
            first = int(rng.integers(p.scores.size))
            starts = [(first + r * gap_frames) % p.scores.size for r in range(REPS)]
            means[d, j] = float(np.mean(p.scores[starts]))
    ok = np.all(np.diff(means, axis=1) >= MARGIN, axis=1)
    return float(ok.mean()), means


LEVELS = (0.0, 1.0, 2.0, 3.0, 4.0)  # the training labels, equally likely a priori
PRIOR_SUBJECTS = 3000  # phantom subjects drawn for the prior of the range given severity


def smile_range(spec: PatientSpec, severity: float) -> float:
    """The patient's smile range (gain) at ``severity``, averaged over its repetitions: trainer/bound.py's amplitude,
    ``expressiveness x (1 - 0.75 s)(1 - 0.1 s k) x`` the asymmetry factors."""
    return float(np.mean([amplitude_of(spec, k, severity / 4.0) for k in range(spec.reps)]))


def amplitude_bound(patients: list[Patient], draws: int, rng: np.random.Generator) -> dict[str, float]:
    """The check's bound from the phantom itself. A reader that knows each patient's exact smile range and scores it
    E[severity | range] (under :data:`LEVELS` equally likely and the phantom's own trait draws) is scored on the same
    patients with the same draws, without phase or tracking noise: ``amplitude_reader_rank_rate``. And
    ``amplitude_order_ceiling``: how often three random phantom patients at :data:`SEVERITIES` have falling ranges,
    which no reader of the range alone, however calibrated, can beat."""
    prior = [camera_spec(10**6 + i, 0.0) for i in range(PRIOR_SUBJECTS)]
    ranges = np.array([[smile_range(spec, v) for v in LEVELS] for spec in prior])  # [subject, level]
    edges = np.quantile(ranges, np.linspace(0, 1, 41))
    bins = np.clip(np.searchsorted(edges, ranges) - 1, 0, 39)
    levels = np.broadcast_to(np.array(LEVELS), ranges.shape)
    table = np.array([levels[bins == b].mean() for b in range(40)])  # E[severity | range bin]

    def reader(r: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(table[np.clip(np.searchsorted(edges, r) - 1, 0, 39)], dtype=np.float64)

    by_sev = {s: np.array([smile_range(camera_spec(p.seed, s), s) for p in patients if p.severity == s])
              for s in SEVERITIES}  # fmt: skip
    scored = {s: reader(r) for s, r in by_sev.items()}
    means = np.stack([scored[s][rng.integers(scored[s].size, size=draws)] for s in SEVERITIES], axis=1)
    rate = float(np.all(np.diff(means, axis=1) >= MARGIN, axis=1).mean())
    cols = [LEVELS.index(s) for s in SEVERITIES]
    picks = np.stack([ranges[rng.integers(len(prior), size=draws), c] for c in cols], axis=1)
    ceiling = float(np.all(np.diff(picks, axis=1) < 0, axis=1).mean())
    return {"amplitude_reader_rank_rate": round(rate, 3), "amplitude_order_ceiling": round(ceiling, 3)}


def summarise(patients: list[Patient], draws: int, seed: int, hold_s: float) -> dict[str, float]:
    gap = round((hold_s + REST_S + COUNTDOWN_S) * FPS)
    rate, means = draw_rate(patients, draws, np.random.default_rng(seed), gap)
    figures: dict[str, float] = {"rank_rate": round(rate, 3), "draws": float(draws)}
    for j, s in enumerate(SEVERITIES):
        group = [p for p in patients if p.severity == s]
        every = np.concatenate([p.scores for p in group])
        tag = f"s{s:g}"
        figures[f"mean_{tag}"] = round(float(every.mean()), 3)
        figures[f"sd_{tag}"] = round(float(every.std()), 3)
        figures[f"identity_sd_{tag}"] = round(float(np.std([p.scores.mean() for p in group])), 3)
        figures[f"phase_sd_{tag}"] = round(float(np.mean([p.scores.std() for p in group])), 3)
        figures[f"draw_mean_{tag}"] = round(float(means[:, j].mean()), 3)
        figures[f"draw_sd_{tag}"] = round(float(means[:, j].std()), 3)
        moving = np.concatenate([p.moving for p in group])
        for lo, hi in ((0.0, 0.25), (0.25, 0.5), (0.5, 1.01)):
            pick = (moving >= lo) & (moving < hi)
            if pick.any():
                figures[f"mean_{tag}_moving_{int(100 * lo)}"] = round(float(every[pick].mean()), 3)
    return figures


@click.command()
@click.option("--models", "models", type=click.Path(file_okay=False, exists=True, path_type=Path), default=ARTIFACTS,
              help="folder holding pfed5/smile/<version> (default: the committed demo models)")  # fmt: skip
@click.option("--quick", is_flag=True, help="4 identities per severity (about 3 minutes on one core)")
@click.option("--identities", type=int, default=None, help="identities per severity (default 12, --quick 4)")
@click.option("--seed", type=int, default=0, help="draws' seed")
@click.option("--first-seed", type=int, default=FIRST_SEED, help="first phantom seed")
@click.option("--draws", type=int, default=20000)
@click.option("--hold-s", type=float, default=HOLD_S, help="the live task clip's length")
@click.option("--appearance", type=click.Choice(APPEARANCES), default=CAMERA_APPEARANCE,
              help="the patients' faces (default: the browser test's)")  # fmt: skip
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--patients-json", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write every patient's per-start scores")  # fmt: skip
def main(models: Path, quick: bool, identities: int | None, seed: int, first_seed: int, draws: int, hold_s: float,
         appearance: str, json_path: Path | None, patients_json: Path | None) -> None:  # fmt: skip
    """Score every live-length smile clip of held-out looping patients; print the ranking figures."""
    import torch

    torch.set_num_threads(1)
    count = identities or (4 if quick else 12)
    model_dir = models / "pfed5" / "smile" / DEMO_VERSION
    model = load_model(Manifest.read(model_dir), model_dir, BackendChoice())
    load = os.getloadavg()
    t0 = time.monotonic()
    patients: list[Patient] = []
    with tempfile.TemporaryDirectory(prefix="feqa-demo-ranking-") as tmp:
        for k, (j, s) in itertools.product(range(count), enumerate(SEVERITIES)):
            patients.append(measure_patient(model, s, first_seed + 3 * k + j, Path(tmp), round(hold_s * FPS),
                                            appearance))  # fmt: skip
            click.echo(f"  patient seed {patients[-1].seed} severity {s:g}: mean {patients[-1].scores.mean():.2f} "
                       f"sd {patients[-1].scores.std():.2f}", err=True)  # fmt: skip
    figures = summarise(patients, draws, seed, hold_s)
    figures.update(amplitude_bound(patients, draws, np.random.default_rng(seed)))
    figures.update(identities=float(count), seconds=round(time.monotonic() - t0, 1), hold_s=hold_s)
    figures.update(load_avg_before=round(load[0], 2), load_avg_after=round(os.getloadavg()[0], 2))
    click.echo(f"{'severity':>8} {'mean':>6} {'sd':>6} {'identity sd':>12} {'phase sd':>9} "
               f"{'<25% moving':>12} {'25-50%':>7} {'>50%':>6}")  # fmt: skip
    for s in SEVERITIES:
        t = f"s{s:g}"
        cells = [figures.get(f"mean_{t}_moving_{b}", float("nan")) for b in (0, 25, 50)]
        click.echo(f"{s:>8g} {figures[f'mean_{t}']:>6.2f} {figures[f'sd_{t}']:>6.2f} "
                   f"{figures[f'identity_sd_{t}']:>12.2f} {figures[f'phase_sd_{t}']:>9.2f} "
                   f"{cells[0]:>12.2f} {cells[1]:>7.2f} {cells[2]:>6.2f}")  # fmt: skip
    click.echo(f"draws ranking with margin {MARGIN} ({REPS} reps, {draws} draws, {count} identities per severity): "
               f"{figures['rank_rate']:.1%}; {figures['seconds']:.0f} s, load average {load[0]:.2f} -> "
               f"{figures['load_avg_after']:.2f}")  # fmt: skip
    click.echo(f"the phantom's bound on the same patients: an exact reader of the smile range passes the check in "
               f"{figures['amplitude_reader_rank_rate']:.1%} of draws; any reader of the range alone orders three "
               f"random patients in at most {figures['amplitude_order_ceiling']:.1%}")  # fmt: skip
    if json_path is not None:
        json_path.write_text(json.dumps({**figures, "appearance": appearance}, indent=1))
    if patients_json is not None:
        rows = [{"severity": p.severity, "seed": p.seed, "scores": p.scores.round(3).tolist(),
                 "moving": p.moving.round(3).tolist()} for p in patients]  # fmt: skip
        patients_json.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
