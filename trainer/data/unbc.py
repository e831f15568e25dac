"""Reader for the UNBC-McMaster Shoulder Pain Expression Archive as distributed (models.md §2.6, §4.4).

Layout under ``root`` (the dataset's own folder names)::

    Images/<subject>/<sequence>/<frame>.png                  e.g. Images/042-ll042/ll042t1aaaff/ll042t1aaaff001.png
    Sequence_Labels/VAS/<subject>/<sequence>.txt              one number: self-reported pain, 0-10
    Frame_Labels/PSPI/<subject>/<sequence>/<frame>_facs.txt   one number per frame: PSPI, 0-16

The frames are full video frames (no 106-point landmarks ship with the data), so every clip is landmarked by the
tracker's own pipeline from its frame folder (``data.landmarks = video``).

Two label protocols (``data.unbc_label``):

* ``vas`` (QAFE-Net's, models.md §2.6): one clip per sequence, labelled with its VAS; 5-fold cross-validation with 5
  subjects per fold (``data.fold`` 1-5: the sorted subject list cut into five runs of five); QAFE-Net averages 10
  random clips per test sequence (``train.eval_clips = 10``) and reports MAE and RMSE (we add Pearson's r).
* ``pspi``: frame-level PSPI. With ``data.unbc_window`` = W > 0 each sequence is cut into clips of W frames at a hop
  of W / 2, each labelled with the mean PSPI of its frames (what a live window over those frames should score); with
  W = 0 one clip per sequence, labelled with its mean PSPI. Reported as MAE, RMSE and Pearson's r.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from common.errors import ConfigError
from trainer.data.records import ClipRecord

log = logging.getLogger(__name__)

UNBC_LABELS = ("vas", "pspi")
UNBC_FOLDS = 5
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TASK = "pain"


@dataclasses.dataclass(frozen=True)
class UnbcOptions:
    label: str = "vas"
    window: int = 0
    fold: int = 0  # 1-5: test subjects of that fold (0: the caller splits at random)


def _number(path: Path) -> float:
    text = path.read_text().split()
    if not text:
        raise ConfigError(f"{path}: empty label file")
    try:
        return float(text[0])
    except ValueError:
        raise ConfigError(f"{path}: expected a number, got {text[0]!r}") from None


def _frames(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def fold_subjects(subjects: list[str], fold: int) -> set[str]:
    """Test subjects of ``fold`` (1-5): the sorted subjects cut into five consecutive runs."""
    if not 1 <= fold <= UNBC_FOLDS:
        raise ConfigError(f"UNBC-McMaster data.fold must be 1..{UNBC_FOLDS} (or 0 for a seeded split), got {fold}")
    ordered = sorted(subjects)
    size = -(-len(ordered) // UNBC_FOLDS)
    return set(ordered[(fold - 1) * size : fold * size])


def read_unbc(root: Path, options: UnbcOptions) -> list[ClipRecord]:
    """One record per sequence (or per window of a sequence), landmarked from its frame folder."""
    if options.label not in UNBC_LABELS:
        raise ConfigError(f"data.unbc_label must be one of {UNBC_LABELS}, got {options.label!r}")
    if options.window < 0:
        raise ConfigError(f"data.unbc_window must be >= 0, got {options.window}")
    images = Path(root) / "Images"
    if not images.is_dir():
        raise ConfigError(f"{root}: no Images/<subject>/<sequence>/ folders (UNBC-McMaster layout)")
    records: list[ClipRecord] = []
    for subject_dir in sorted(p for p in images.iterdir() if p.is_dir()):
        for seq_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir()):
            frames = _frames(seq_dir)
            if not frames:
                log.warning("%s: no frames, skipped", seq_dir)
                continue
            records += _records(Path(root), subject_dir.name, seq_dir, frames, options)
    if not records:
        raise ConfigError(f"{images}: no sequences with frames")
    if options.fold:
        test = fold_subjects(sorted({r.subject for r in records}), options.fold)
        records = [dataclasses.replace(r, split="test" if r.subject in test else "train") for r in records]
    log.info("UNBC-McMaster at %s: %d clips (%s), %d subjects", root, len(records), options.label,
             len({r.subject for r in records}))  # fmt: skip
    return records


def _records(root: Path, subject: str, seq_dir: Path, frames: list[Path], options: UnbcOptions) -> list[ClipRecord]:
    seq = seq_dir.name
    n = len(frames)

    def record(clip_id: str, label: float, start: int, end: int) -> ClipRecord:
        return ClipRecord(clip_id=clip_id, subject=subject, expression=TASK, label=label, n_frames=end - start,
                          frames_dir=None, trajectory=None, colour=None, split="", video=seq_dir, video_start=start,
                          video_end=end)  # fmt: skip

    if options.label == "vas":
        path = root / "Sequence_Labels" / "VAS" / subject / f"{seq}.txt"
        if not path.is_file():
            raise ConfigError(f"sequence {subject}/{seq}: no VAS label at {path}")
        return [record(seq, _number(path), 0, n)]
    pspi_dir = root / "Frame_Labels" / "PSPI" / subject / seq
    pspi = []
    for f in frames:
        path = pspi_dir / f"{f.stem}_facs.txt"
        if not path.is_file():
            raise ConfigError(f"frame {subject}/{seq}/{f.name}: no PSPI label at {path}")
        pspi.append(_number(path))
    w = options.window
    if not w or w >= n:
        return [record(seq, sum(pspi) / n, 0, n)]
    hop = max(1, w // 2)
    return [record(f"{seq}@{s}", sum(pspi[s : s + w]) / w, s, s + w) for s in range(0, n - w + 1, hop)]
