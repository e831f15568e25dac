"""Subject-wise train / validation / test splits: no subject is ever in two of them."""

from __future__ import annotations

import dataclasses

import numpy as np

from common.errors import ConfigError
from trainer.data.layouts import NEUROFACE_FOLDS
from trainer.data.records import ClipRecord


@dataclasses.dataclass(frozen=True)
class Split:
    train: tuple[ClipRecord, ...]
    val: tuple[ClipRecord, ...]
    test: tuple[ClipRecord, ...]

    def subjects(self, part: str) -> set[str]:
        return {r.subject for r in getattr(self, part)}


def split_by_subject(
    records: list[ClipRecord], *, val_fraction: float, test_fraction: float, seed: int, fold: int = 0
) -> Split:
    """Test subjects come from the layout (PFED5's test file, NeuroFace's fold lists) or, when it has none, a seeded
    ``test_fraction`` of subjects; validation subjects are a seeded ``val_fraction`` of the remaining ones."""
    subjects = sorted({r.subject for r in records})
    rng = np.random.default_rng(seed)
    if any(r.split == "test" for r in records):
        test_subj = {r.subject for r in records if r.split == "test"}
    elif fold:
        if not 1 <= fold <= len(NEUROFACE_FOLDS):
            raise ConfigError(f"fold must be 1..{len(NEUROFACE_FOLDS)}, got {fold}")
        test_subj = set(NEUROFACE_FOLDS[fold - 1]) & set(subjects)
    else:
        n_test = max(1, round(test_fraction * len(subjects)))
        test_subj = set(rng.permutation(subjects)[:n_test].tolist())
    rest = [s for s in subjects if s not in test_subj]
    n_val = max(1, round(val_fraction * len(rest)))
    if len(rest) <= n_val:
        raise ConfigError(f"{len(rest)} training subjects cannot spare {n_val} for validation")
    val_subj = set(rng.permutation(rest)[:n_val].tolist())
    return Split(
        train=tuple(r for r in records if r.subject not in test_subj and r.subject not in val_subj),
        val=tuple(r for r in records if r.subject in val_subj),
        test=tuple(r for r in records if r.subject in test_subj),
    )
