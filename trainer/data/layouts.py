"""Readers for the on-disk layouts of the real PFED5 and Toronto NeuroFace distributions (models.md §4.1, §4.2).

Both produce :class:`ClipRecord` lists: one expression trial per record, with its label, subject and files. Folder
names differ between copies of the data, so files are found by their documented relative names under ``root``:
frames in ``<subject>/<video_id>/*.jpg`` (PFED5) or ``<group>/<task>/<file>/<rep>/*.jpg`` (NeuroFace), trajectories
``<video_id>-<subject>.npy`` ([T, 73, 2]) and colours with the same name ([T, 71, 3]) in another folder.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from common.errors import ConfigError

log = logging.getLogger(__name__)

PFED5_EXPRESSIONS = ("rest", "smile", "frown", "squeeze_eyes", "clench_teeth")  # class index 0..4
NEUROFACE_TASKS = ("blow", "kiss", "brow", "open", "spread", "bigsmile")
NEUROFACE_FOLDS: tuple[tuple[str, ...], ...] = (
    ("N002", "OP03", "A009", "A016", "S007", "N001", "S002", "N008", "N010", "N004", "N012", "S005"),
    ("A008", "N011", "S013", "N019", "A017", "A014", "A011", "A015", "OP02", "A012", "S011", "N003"),
    ("A010", "S008", "S001", "S009", "N017", "N007", "S012", "A006", "A002", "OP01", "S006", "S003"),
)
"""Test subjects of the reference's three folds (with the stray space after 'S007' removed)."""


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    """One labelled expression trial and where its files are."""

    clip_id: str
    subject: str
    expression: str
    label: float
    n_frames: int
    frames_dir: Path
    trajectory: Path
    colour: Path
    split: str  # "train" / "test" as the label file says, or "" when the layout has none


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if rows:
        try:
            float(rows[0][1])
        except (ValueError, IndexError):
            rows = rows[1:]  # header
    return rows


def _index_npy(root: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """All .npy files under root, split into trajectories ([T, 73|74, >=2]) and colours ([T, 71, 3]) by name."""
    traj: dict[str, Path] = {}
    colour: dict[str, Path] = {}
    for path in sorted(root.rglob("*.npy")):
        arr = np.load(path, mmap_mode="r")
        if arr.ndim == 3 and arr.shape[1] in (73, 74):
            traj[path.name] = path
        elif arr.ndim == 3 and arr.shape[1] == 71:
            colour[path.name] = path
    return traj, colour


class _FrameDirs:
    """Every folder under ``root`` that holds ``*.jpg`` frames, found in one walk and looked up by its last path
    components (a per-clip ``rglob`` re-walks every frame of the dataset for each clip)."""

    def __init__(self, root: Path) -> None:
        self._dirs = sorted(Path(d) for d, _, files in os.walk(root) if any(f.endswith(".jpg") for f in files))
        self._by_tail: dict[int, dict[tuple[str, ...], Path]] = {}

    def find(self, *parts: str) -> Path | None:
        depth = len(parts)
        if depth not in self._by_tail:
            table: dict[tuple[str, ...], Path] = {}
            for d in self._dirs:
                table.setdefault(d.parts[-depth:], d)
            self._by_tail[depth] = table
        return self._by_tail[depth].get(parts)


def _find_csvs(root: Path, names: tuple[str, ...]) -> list[Path]:
    return [p for name in names for p in sorted(root.rglob(name))]


def read_pfed5(root: Path) -> list[ClipRecord]:
    """PFED5: ``PFED5_{train,test}.csv`` (class in column 3) or ``{train,test}_41.csv`` (class in column 4)."""
    root = Path(root)
    csvs = _find_csvs(root, ("PFED5_train.csv", "PFED5_test.csv"))
    class_col = 3
    if not csvs:
        csvs, class_col = _find_csvs(root, ("train_41.csv", "test_41.csv")), 4
    if not csvs:
        raise ConfigError(f"{root}: no PFED5 label file (PFED5_train.csv or train_41.csv) found")
    traj, colour = _index_npy(root)
    frame_dirs = _FrameDirs(root)
    records: list[ClipRecord] = []
    for path in csvs:
        split = "test" if "test" in path.name else "train"
        for row in _rows(path):
            ident = row[0].strip()
            video_id, _, subject = ident.rpartition("_")
            name = f"{video_id}-{subject}.npy"
            frames = frame_dirs.find(subject, video_id)
            if name not in traj or name not in colour or frames is None:
                raise ConfigError(f"{path.name}: clip {ident}: missing frames, trajectory or colour file {name}")
            cls = int(float(row[class_col]))
            records.append(
                ClipRecord(
                    clip_id=ident,
                    subject=subject,
                    expression=PFED5_EXPRESSIONS[cls],
                    label=float(row[1]),
                    n_frames=int(float(row[2])),
                    frames_dir=frames,
                    trajectory=traj[name],
                    colour=colour[name],
                    split=split,
                )
            )
    log.info("PFED5 at %s: %d clips, %d subjects", root, len(records), len({r.subject for r in records}))
    return records


def read_neuroface(root: Path) -> list[ClipRecord]:
    """Toronto NeuroFace: ``split_6tasks_sum.csv`` (file, subject, group, task, rep, frames, start, end, 5 sub-scores,
    sum); the regression target is column 13."""
    root = Path(root)
    csvs = _find_csvs(root, ("split_6tasks_sum.csv",))
    if not csvs:
        raise ConfigError(f"{root}: no NeuroFace label file split_6tasks_sum.csv found")
    traj, colour = _index_npy(root)
    frame_dirs = _FrameDirs(root)
    records: list[ClipRecord] = []
    for row in _rows(csvs[0]):
        file, subject, group, task, rep = (c.strip() for c in row[:5])
        name = f"{file}_{rep}.npy"
        frames = frame_dirs.find(group, task, file, rep)
        if name not in traj or name not in colour or frames is None:
            raise ConfigError(f"{csvs[0].name}: {file} rep {rep}: missing frames, trajectory or colour file {name}")
        records.append(
            ClipRecord(
                clip_id=f"{file}_{rep}",
                subject=subject,
                expression=task.lower(),
                label=float(row[13]),
                n_frames=int(float(row[5])),
                frames_dir=frames,
                trajectory=traj[name],
                colour=colour[name],
                split="",
            )
        )
    log.info("NeuroFace at %s: %d clips, %d subjects", root, len(records), len({r.subject for r in records}))
    return records


def read_layout(layout: str, root: Path) -> list[ClipRecord]:
    readers = {"pfed5": read_pfed5, "neuroface": read_neuroface}
    if layout not in readers:
        raise ConfigError(f"unknown dataset layout {layout!r}; expected one of {sorted(readers)}")
    return readers[layout](root)
