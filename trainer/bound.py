"""How much severity a phantom clip holds: readers of the phantom's own hidden truth, the bound beside the baselines.

A model result means something only beside what the data allow. For a phantom dataset (``phantom_clips.csv`` holds
every clip's :class:`~phantom.spec.PatientSpec`, latent severity included) this module recomputes, per clip, the
exact values of every channel severity acts through for a voluntary task (:mod:`phantom.severity`):

- ``amplitude``: the peak gain of the movement, ``expressiveness x (1 - 0.75 s)(1 - 0.1 s k) x`` the mean of the two
  sides' asymmetry factors (pfed5, neuroface; palsy's two sides averaged). Expressiveness (x0.6-1.4, x0.35-1.65 in
  the ``amplitude`` population) multiplies it, so amplitude alone cannot tell a weak face from a mildly impaired
  reserved one.
- ``ramp_s``: the onset ramp's duration, ``0.45 s x speed x (1 + 0.25 s) x jitter`` (bradykinesia, weak: the
  subject's speed spreads x0.7-1.5).
- ``decay``: the fraction of the peak lost over the hold, ``0.3 s``: scale-free, so it is the one channel
  expressiveness does not mask; in landmark terms it is small: ``decay x amplitude x`` the face's full smile width
  change (about 0.13 inter-ocular distances at gain 1), at most about 0.013 IOD (1.6 px of a 256-px crop, whose
  IOD is about 126 px) near label 2-3, and it overlaps tremor (0.004-0.02 IOD in 35 % of subjects) and head motion.

and fits readers of them on the training clips, scored on the test clips exactly as the baselines are
(:func:`trainer.baselines.score_baselines`: Spearman of the unclipped prediction, MAE clamped to the scale):

- ``oracle_latent``: the face's latent severity itself, no fit: the rater floor (label noise) no reader can pass.
- ``oracle_amplitude``: a cubic in the exact amplitude: the most any amplitude-only reader (a distance, a range of
  motion, a model that reads only how far the face moves) can get.
- ``oracle_amplitude_ramp``: a quadratic ridge fit on exact amplitude and log ramp time.
- ``oracle_decay_noisy``: the same plus the hold's decay as a landmark reader would see it: ``decay x amplitude x
  0.13`` IOD with Gaussian reading noise of ``DECAY_NOISE_IOD``, divided back by the (exact) amplitude.
- ``oracle_all_exact``: every channel exact (amplitude, ramp and decay): equals the latent reader up to the fit.

:func:`bound_of` scores them for dataset clips (``benchmarks/baselines.py`` and ``feqa evaluate`` print them beside
the baselines); :func:`against_latent` is the line of a scorer's output against the latent severity (a slope below 1:
compressed scores).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from phantom.script import build_script
from phantom.severity import hold_decay, side_gains, weak_image_side
from phantom.spec import PatientSpec
from trainer.baselines import BaselineScore
from trainer.data.layouts import PHANTOM_MARKER
from trainer.data.records import ClipRecord
from trainer.metrics import spearman

F64 = npt.NDArray[np.float64]
ORACLES = ("oracle_latent", "oracle_amplitude", "oracle_amplitude_ramp", "oracle_decay_noisy", "oracle_all_exact")
SMILE_WIDTH_IOD = 0.13  # full smile width change at gain 1 (fair phantom, severity 0; kinematics tests' subject 2)
# reading noise of the hold's end level against its peak (a few tenths of a pixel per point); a straight line through
# the mouth width over the exactly known hold of the ground-truth trajectories reads it at 0.006-0.008 in this unit
DECAY_NOISE_IOD = 0.005
_SCRIPT_FPS = 1000.0  # the ramp is read off the script at 1 ms resolution


@dataclasses.dataclass(frozen=True)
class ClipTruth:
    """One clip's hidden channels (see the module docstring) and its rater label."""

    clip_id: str
    label: float
    latent: float
    amplitude: float
    ramp_s: float
    decay: float


def amplitude_of(spec: PatientSpec, rep: int, impairment: float | None = None) -> float:
    """The peak gain of repetition ``rep``'s movement (``amplitude`` above) at ``impairment`` on [0, 1] (the spec's
    own when None): the subject's traits with the severity model's side gains."""
    s = spec.impairment if impairment is None else impairment
    tr = spec.traits
    gains = side_gains(spec.protocol, s, rep, weak_image_side(spec.palsy_side))
    asym = [1.0 - tr.asymmetry * spec.nuisance if side == tr.asymmetry_side else 1.0 for side in ("left", "right")]
    return tr.expressiveness * float(np.mean([g * a for g, a in zip(gains, asym, strict=True)]))


def truth_of(spec: PatientSpec, rep: int, clip_id: str, label: float) -> ClipTruth:
    """The hidden channels of repetition ``rep`` of ``spec`` (its first task)."""
    s, weak = spec.impairment, weak_image_side(spec.palsy_side)
    amplitude = amplitude_of(spec, rep)
    script = build_script(spec, _SCRIPT_FPS)
    seg = script.segments[rep]
    ramp = float(np.count_nonzero(script.phase[seg.start : seg.end] == 1)) / _SCRIPT_FPS
    decay = float(np.mean(hold_decay(spec.protocol, s, weak)))
    return ClipTruth(clip_id, label, float(spec.severity), amplitude, ramp, decay)


def phantom_clip_specs(root: Path, layout: str) -> dict[str, tuple[PatientSpec, int]]:
    """Clip id -> (the phantom patient that clip shows, its repetition) for a phantom dataset at ``root``; empty when
    ``root`` is not one (no ``phantom_clips.csv``). PFED5 clips are one repetition each; NeuroFace ids are
    ``<file>_<repID>``, one per repetition of the file's patient."""
    path = root / PHANTOM_MARKER
    if not path.is_file():
        return {}
    out: dict[str, tuple[PatientSpec, int]] = {}
    with path.open(newline="") as fh:
        for row in csv.reader(fh):
            if row[0] in ("clip", "file"):
                continue
            spec = PatientSpec.from_json(row[-1])
            ids = [row[0]] if layout == "pfed5" else [f"{row[0]}_{k + 1}" for k in range(spec.reps)]
            out.update({clip_id: (spec, rep) for rep, clip_id in enumerate(ids)})
    return out


def read_truths(root: Path, labels: dict[str, float], layout: str) -> dict[str, ClipTruth]:
    """Clip id -> truth for every labelled clip of a phantom dataset at ``root`` (empty when it is not one).

    ``labels`` maps the layout's clip ids to their rater labels (NeuroFace ids are ``<file>_<repID>``)."""
    specs = phantom_clip_specs(root, layout)
    return {c: truth_of(spec, rep, c, labels[c]) for c, (spec, rep) in specs.items() if c in labels}


def _ridge(x: F64, y: F64, x_test: F64, alpha: float = 1e-3) -> F64:
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    a, b = (x - mean) / std, (x_test - mean) / std
    w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ (y - y.mean()))
    out: F64 = b @ w + y.mean()
    return out


def _quadratic(cols: F64) -> F64:
    n = cols.shape[1]
    pairs = [cols[:, i] * cols[:, j] for i in range(n) for j in range(i, n)]
    return np.column_stack([cols, *pairs])


def _channels(truths: Sequence[ClipTruth], which: str, rng: np.random.Generator, noise_iod: float) -> F64:
    amp = np.array([t.amplitude for t in truths])
    ramp = np.log(np.array([t.ramp_s for t in truths]) + 1e-3)
    decay = np.array([t.decay for t in truths])
    if which == "amplitude":
        return np.column_stack([amp, amp**2, amp**3])
    if which == "amplitude_ramp":
        return _quadratic(np.column_stack([amp, ramp]))
    if which == "decay_noisy":
        seen = decay * amp * SMILE_WIDTH_IOD + rng.normal(0.0, noise_iod, amp.shape)
        return _quadratic(np.column_stack([amp, ramp, seen / (np.maximum(amp, 1e-3) * SMILE_WIDTH_IOD)]))
    return _quadratic(np.column_stack([amp, ramp, decay]))


def oracle_predictions(
    train: Sequence[ClipTruth], test: Sequence[ClipTruth], seed: int = 0, decay_noise_iod: float = DECAY_NOISE_IOD
) -> dict[str, F64]:
    """Every oracle reader's predictions for ``test`` (unclipped), fitted on ``train``; ``decay_noise_iod`` is the
    decay reader's reading noise (sd, inter-ocular distances), drawn afresh for the training and the test clips."""
    if len(train) < 10 or not test:
        raise ValueError("the oracle readers need at least 10 training clips and 1 test clip")
    y = np.array([t.label for t in train])
    out = {"oracle_latent": np.array([t.latent for t in test])}
    for name in ORACLES[1:]:
        which = name.removeprefix("oracle_")
        x = _channels(train, which, np.random.default_rng([seed, 1]), decay_noise_iod)
        x_test = _channels(test, which, np.random.default_rng([seed, 2]), decay_noise_iod)
        out[name] = _ridge(x, y, x_test)
    return out


def score_oracles(
    train: Sequence[ClipTruth],
    test: Sequence[ClipTruth],
    label_range: tuple[float, float],
    seed: int = 0,
    decay_noise_iod: float = DECAY_NOISE_IOD,
) -> dict[str, BaselineScore]:
    """Spearman and MAE of every oracle reader on ``test``, scored as :func:`trainer.baselines.score_baselines`."""
    label = np.array([t.label for t in test])
    out = {}
    for name, pred in oracle_predictions(train, test, seed, decay_noise_iod).items():
        mae = float(np.abs(np.clip(pred, *label_range) - label).mean())
        out[name] = BaselineScore(name, spearman(pred, label), mae)
    return out


def bound_of(
    fit_on: Sequence[ClipRecord],
    fit_root: Path,
    test: Sequence[ClipRecord],
    test_root: Path,
    layout: str,
    label_range: tuple[float, float],
    decay_noise_iod: float = DECAY_NOISE_IOD,
) -> dict[str, dict[str, float]]:
    """Every oracle reader's ``{"spearman", "mae"}`` on ``test`` (clips of the phantom set at ``test_root``), fitted on
    ``fit_on`` (of the set at ``fit_root``); empty unless both are phantom sets with every clip's truth (real data,
    or too few clips to fit)."""
    fit = read_truths(fit_root, {r.clip_id: r.label for r in fit_on}, layout)
    scored = read_truths(test_root, {r.clip_id: r.label for r in test}, layout)
    if len(fit) < len(fit_on) or len(scored) < len(test) or len(fit) < 10 or not scored:
        return {}
    scores = score_oracles(
        [fit[r.clip_id] for r in fit_on], [scored[r.clip_id] for r in test], label_range, 0, decay_noise_iod
    )
    return {k: {"spearman": v.spearman, "mae": v.mae} for k, v in scores.items()}


def against_latent(pred: npt.ArrayLike, latent: npt.ArrayLike) -> dict[str, float]:
    """Least-squares ``pred ~ slope x latent + offset`` and the Pearson r: a scorer that reads the latent severity on
    its own scale has slope 1 and offset 0; a slope below 1 is compressed scores (e.g. a model that partly reads a
    channel the set lacks)."""
    p, s = np.asarray(pred, dtype=np.float64), np.asarray(latent, dtype=np.float64)
    if len(p) < 2 or np.ptp(s) == 0:
        return {"slope": float("nan"), "offset": float("nan"), "pearson": float("nan")}
    slope, offset = np.polyfit(s, p, 1)
    return {"slope": float(slope), "offset": float(offset), "pearson": float(np.corrcoef(p, s)[0, 1])}
