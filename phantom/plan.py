"""What a synthetic dataset holds, decided before any frame is drawn: subjects, labels, specs and clip lengths.

:mod:`phantom.dataset` renders a plan; tests and benchmarks read a plan to check a large dataset's label table in
seconds (clip lengths come from the script, which needs no rendering).

Labels are a rater's, not the face's: each clip's face shows a latent severity (the subject's level plus a per-clip
spread), and the label file holds what a rater would write down: PFED5 ``round(latent + N(0, 0.35))`` clamped to
0-4; NeuroFace the mean of three raters' whole scores, each ``round(latent + N(0, 0.45))`` clamped to 1-5, which
is a multiple of 1/3 as a rater mean is. ``phantom_clips.csv`` keeps the spec (with the latent severity) of every
clip, so the label noise is known exactly.

A :class:`Cohort` chooses who is in the dataset: the trait ``population`` (:mod:`phantom.traits`), the
``appearance``, ``identities`` (``train``: identity seeds ``seed * 1000 + subject``; ``held-out``: the same plus
2**40, a range no ``train`` dataset of any seed uses) and whether nuisance is drawn (``PatientSpec.nuisance``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phantom.script import build_script
from phantom.spec import APPEARANCES, PROTOCOL_TASKS, PatientSpec
from phantom.traits import check_population

PFED5_TRAIN_IDS = [
    "001", "007", "008", "009", "011", "013", "015", "022", "024", "026", "027", "029", "030", "036", "037",
    "038", "039", "042", "043", "045", "048", "049", "052", "057", "058", "060", "061", "062", "065", "066",
]  # fmt: skip
NEUROFACE_FOLDS = {
    1: ["N002", "OP03", "A009", "A016", "S007", "N001", "S002", "N008", "N010", "N004", "N012", "S005"],
    2: ["A008", "N011", "S013", "N019", "A017", "A014", "A011", "A015", "OP02", "A012", "S011", "N003"],
    3: ["A010", "S008", "S001", "S009", "N017", "N007", "S012", "A006", "A002", "OP01", "S006", "S003"],
}
NEUROFACE_GROUPS = {"A": "ALS", "S": "Stroke", "OP": "Stroke", "N": "HC"}
IDENTITIES = ("train", "held-out")
HELD_OUT_OFFSET = 1 << 40
PFED5_CLIP_SPREAD = 0.5
PFED5_RATER_SD = 0.35
NEUROFACE_TASK_SPREAD = 0.4
NEUROFACE_RATER_SD = 0.45
NEUROFACE_RATERS = 3


@dataclass(frozen=True)
class Cohort:
    """Who the subjects of a dataset are (see the module docstring)."""

    population: str = "standard"
    appearance: str = "cartoon"
    identities: str = "train"
    nuisance: bool = True

    def __post_init__(self) -> None:
        check_population(self.population)
        if self.appearance not in APPEARANCES:
            raise ValueError(f"appearance must be one of {APPEARANCES}, got {self.appearance!r}")
        if self.identities not in IDENTITIES:
            raise ValueError(f"identities must be one of {IDENTITIES}, got {self.identities!r}")

    def identity_seed(self, base: int) -> int:
        return base + (HELD_OUT_OFFSET if self.identities == "held-out" else 0)


@dataclass(frozen=True)
class PlannedClip:
    """One labelled clip: ``spec`` performs it (its severity is the latent one), ``label`` is the rater's."""

    subject: str
    split: str
    task: str
    visit: int
    label: float
    spec: PatientSpec

    def n_frames(self, fps: float, rep: int = 0) -> int:
        """Frames of repetition ``rep`` at ``fps`` (from the script alone, nothing is drawn)."""
        seg = build_script(self.spec, fps).segments[rep]  # what Phantom(spec, ..., fps).schedule holds
        return seg.end - seg.start


def pfed5_subjects(n_subjects: int) -> tuple[list[str], list[str]]:
    """(train, test) subject ids for ``n_subjects``: about 30/41 in training, at least one in each. Training takes
    the published 30 training ids first, then (for larger synthetic sets) the lowest unused numbers."""
    if n_subjects < 2:
        raise ValueError("a PFED5 layout needs at least 2 subjects (one train, one test)")
    n_train = max(1, min(n_subjects - 1, round(n_subjects * 30 / 41)))
    pool = [f"{i:03d}" for i in range(1, 1000) if f"{i:03d}" not in PFED5_TRAIN_IDS]
    extra = max(0, n_train - len(PFED5_TRAIN_IDS))
    train = PFED5_TRAIN_IDS[:n_train] + pool[:extra]
    return train, pool[extra : extra + n_subjects - n_train]


def plan_pfed5(n_subjects: int, clips_per_task: int, seed: int, cohort: Cohort) -> list[PlannedClip]:
    """Every clip of a PFED5-layout dataset, in writing order."""
    if clips_per_task < 1:
        raise ValueError(f"clips_per_task must be >= 1, got {clips_per_task}")
    train, test = pfed5_subjects(n_subjects)
    rng = np.random.default_rng([seed, 41])
    out: list[PlannedClip] = []
    for split, subjects in (("train", train), ("test", test)):
        for subject in subjects:
            subject_seed = cohort.identity_seed(seed * 1000 + int(subject))
            base = float(rng.uniform(0.0, 4.0))
            for visit in range(clips_per_task):
                for task in PROTOCOL_TASKS["pfed5"]:
                    latent = float(np.clip(base + rng.normal(0.0, PFED5_CLIP_SPREAD), 0.0, 4.0))
                    label = float(np.clip(round(latent + rng.normal(0.0, PFED5_RATER_SD)), 0, 4))
                    spec = _spec(int(rng.integers(1 << 30)), "pfed5", latent, 1, task, subject_seed, cohort)
                    out.append(PlannedClip(subject, split, task, visit, label, spec))
    return out


def neuroface_subjects(n_subjects: int) -> list[str]:
    """``n_subjects`` ids taken in turn from the three folds, so every fold has test subjects."""
    if not 1 <= n_subjects <= 36:
        raise ValueError(f"NeuroFace has 36 subjects; asked for {n_subjects}")
    interleaved = [ids[i] for i in range(12) for ids in NEUROFACE_FOLDS.values()]
    return interleaved[:n_subjects]


def neuroface_group(subject: str) -> str:
    return NEUROFACE_GROUPS["OP" if subject.startswith("OP") else subject[0]]


def plan_neuroface(n_subjects: int, reps: int, seed: int, tasks: tuple[str, ...], cohort: Cohort) -> list[PlannedClip]:
    """One planned entry per (subject, task) video; its ``reps`` repetitions share the label, as in NeuroFace."""
    rng = np.random.default_rng([seed, 43])
    out: list[PlannedClip] = []
    for subject in neuroface_subjects(n_subjects):
        subject_seed = cohort.identity_seed(seed * 1000 + sum(ord(ch) * 31**i for i, ch in enumerate(subject)))
        healthy = neuroface_group(subject) == "HC"
        base = 1.0 + float(rng.uniform(0.0, 1.5)) if healthy else float(rng.uniform(1.5, 5.0))
        for task in tasks:
            latent = float(np.clip(base + rng.normal(0.0, NEUROFACE_TASK_SPREAD), 1.0, 5.0))
            raters = np.clip(np.round(latent + rng.normal(0.0, NEUROFACE_RATER_SD, NEUROFACE_RATERS)), 1, 5)
            label = round(float(raters.mean()), 4)
            spec = _spec(int(rng.integers(1 << 30)), "neuroface", latent, reps, task, subject_seed, cohort)
            out.append(PlannedClip(subject, "", task, 0, label, spec))
    return out


def _spec(
    motion_seed: int, protocol: str, latent: float, reps: int, task: str, subject_seed: int, cohort: Cohort
) -> PatientSpec:
    return PatientSpec(
        seed=motion_seed,
        protocol=protocol,
        severity=round(latent, 3),
        reps=reps,
        tasks=(task,),
        identity_seed=subject_seed,
        population=cohort.population,
        appearance=cohort.appearance,
        nuisance=cohort.nuisance,
    )
