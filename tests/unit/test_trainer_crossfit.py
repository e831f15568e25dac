"""Subject folds for the cross-fitted calibration: whole subjects per fold, every clip once, balanced, seeded."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.crossfit import subject_folds
from trainer.data.cache import CachedClip
from trainer.data.records import ClipRecord

pytestmark = pytest.mark.unit


def _clips(subjects: int, per_subject: int) -> list[CachedClip]:
    return [
        CachedClip(ClipRecord(f"s{s}_{k}", f"s{s}", "smile", float(k % 5), 40, None, None, None, ""), Path("unused"))
        for s in range(subjects)
        for k in range(per_subject)
    ]


def test_folds_hold_whole_subjects_and_every_clip_once() -> None:
    clips = _clips(subjects=34, per_subject=4)
    folds = subject_folds(clips, 4, seed=0)
    assert len(folds) == 4
    ids = [c.record.clip_id for fold in folds for c in fold]
    assert sorted(ids) == sorted(c.record.clip_id for c in clips)
    subjects = [{c.record.subject for c in fold} for fold in folds]
    assert all(a.isdisjoint(b) for i, a in enumerate(subjects) for b in subjects[i + 1 :])
    assert sorted(len(s) for s in subjects) == [8, 8, 9, 9]


def test_folds_follow_the_seed() -> None:
    clips = _clips(subjects=12, per_subject=2)

    def members(seed: int) -> list[set[str]]:
        return [{c.record.subject for c in fold} for fold in subject_folds(clips, 3, seed)]

    assert members(0) == members(0)
    assert members(0) != members(1)


@pytest.mark.parametrize("k", [1, 13])
def test_impossible_fold_counts_are_refused(k: int) -> None:
    with pytest.raises(ValueError, match="folds"):
        subject_folds(_clips(subjects=12, per_subject=2), k, seed=0)
