"""Readers for the on-disk layouts of the real PFED5 and Toronto NeuroFace distributions (models.md §4.1, §4.2);
UNBC-McMaster's is :mod:`trainer.data.unbc`.

Both produce :class:`ClipRecord` lists: one expression trial per record, with its label, subject and files. Folder
names differ between copies of the data, so files are found by their documented relative names under ``root``:
frames in ``<subject>/<video_id>/*.jpg`` (PFED5) or ``<group>/<task>/<file>/<rep>/*.jpg`` (NeuroFace), trajectories
``<video_id>-<subject>.npy`` ([T, 73, 2]) and colours with the same name ([T, 71, 3]) in another folder.

A copy may instead (or as well) hold the full-frame source recordings: ``<subject>/<video_id>.<ext>`` (PFED5, one
clip per file) or ``<group>/<task>/<file>.<ext>`` (NeuroFace, one file per task; the label file's 1-based inclusive
``start``/``end`` columns cut each repetition out), ``<ext>`` one of :data:`VIDEO_SUFFIXES`. A clip needs either
its three distributed parts (frames, trajectory, colour) or a source video; ``trainer.data.landmarking`` turns a
video into the same features with the tracker's code. A copy with trajectory and colour files but no frames (a
phantom set written with ``--contents trajectories``) serves models that read no frames; the trainer refuses the
others before any clip is cached (:func:`trainer.data.dataset.refuse_missing_frames`).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from common.errors import ConfigError
from common.protocols import get_protocol
from trainer.config import DataSection
from trainer.data.records import ClipRecord
from trainer.data.unbc import UnbcOptions, read_unbc

log = logging.getLogger(__name__)

# The task tables are common.protocols' (design.md §4). PFED5's class indices 0..4 follow the protocol's task order
# (rest, smile, frown, squeeze_eyes, clench_teeth), which tests/unit/test_protocols.py pins.
PFED5_EXPRESSIONS = get_protocol("pfed5").task_names
NEUROFACE_TASKS = get_protocol("neuroface").task_names
NEUROFACE_FOLDS: tuple[tuple[str, ...], ...] = (
    ("N002", "OP03", "A009", "A016", "S007", "N001", "S002", "N008", "N010", "N004", "N012", "S005"),
    ("A008", "N011", "S013", "N019", "A017", "A014", "A011", "A015", "OP02", "A012", "S011", "N003"),
    ("A010", "S008", "S001", "S009", "N017", "N007", "S012", "A006", "A002", "OP01", "S006", "S003"),
)
"""Test subjects of the reference's three folds (with the stray space after 'S007' removed)."""


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


LAYOUTS = ("pfed5", "neuroface", "unbc")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


class _TailIndex:
    """Paths looked up by their last name components (one table per depth, built on first use)."""

    def __init__(self, named: list[tuple[tuple[str, ...], Path]]) -> None:
        self._named = sorted(named, key=lambda item: item[1])
        self._by_tail: dict[int, dict[tuple[str, ...], Path]] = {}

    def find(self, *parts: str) -> Path | None:
        depth = len(parts)
        if depth not in self._by_tail:
            table: dict[tuple[str, ...], Path] = {}
            for names, path in self._named:
                table.setdefault(names[-depth:], path)
            self._by_tail[depth] = table
        return self._by_tail[depth].get(parts)


class _DatasetFiles:
    """One walk of ``root`` (a per-clip ``rglob`` would re-walk every frame of the dataset for each clip): folders
    holding ``*.jpg`` frames, found by their last folder names, and video files, found by their folders and stem."""

    def __init__(self, root: Path) -> None:
        frame_dirs: list[tuple[tuple[str, ...], Path]] = []
        videos: list[tuple[tuple[str, ...], Path]] = []
        for d, _, files in os.walk(root):
            folder = Path(d)
            if any(f.endswith(".jpg") for f in files):
                frame_dirs.append((folder.parts, folder))
            for f in files:
                if Path(f).suffix.lower() in VIDEO_SUFFIXES:
                    videos.append(((*folder.parts, Path(f).stem), folder / f))
        self.frames = _TailIndex(frame_dirs)
        self.videos = _TailIndex(videos)


PHANTOM_MARKER = "phantom_clips.csv"


def files_landmarker(root: Path) -> str:
    """Who made a copy's distributed trajectory files: the real datasets' were made with insightface; a phantom
    dataset (it has ``phantom_clips.csv`` at its root) writes its ground truth ("phantom")."""
    return "phantom" if (Path(root) / PHANTOM_MARKER).is_file() else "insightface"


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
    found = _DatasetFiles(root)
    made_by = files_landmarker(root)
    records: list[ClipRecord] = []
    for path in csvs:
        split = "test" if "test" in path.name else "train"
        for row in _rows(path):
            ident = row[0].strip()
            video_id, _, subject = ident.rpartition("_")
            name = f"{video_id}-{subject}.npy"
            frames = found.frames.find(subject, video_id)
            video = found.videos.find(subject, video_id)
            if not (name in traj and name in colour) and video is None:
                raise ConfigError(
                    f"{path.name}: clip {ident}: neither a trajectory + colour file {name} nor a source video "
                    f"{subject}/{video_id}.mp4 (or {', '.join(VIDEO_SUFFIXES[1:])}) under {root}"
                )
            cls = int(float(row[class_col]))
            records.append(
                ClipRecord(
                    clip_id=ident,
                    subject=subject,
                    expression=PFED5_EXPRESSIONS[cls],
                    label=float(row[1]),
                    n_frames=int(float(row[2])),
                    frames_dir=frames,
                    trajectory=traj.get(name),
                    colour=colour.get(name),
                    split=split,
                    video=video,
                    files_landmarker=made_by,
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
    found = _DatasetFiles(root)
    made_by = files_landmarker(root)
    records: list[ClipRecord] = []
    for row in _rows(csvs[0]):
        file, subject, group, task, rep = (c.strip() for c in row[:5])
        name = f"{file}_{rep}.npy"
        frames = found.frames.find(group, task, file, rep)
        video = found.videos.find(group, task, file)
        if not (name in traj and name in colour) and video is None:
            raise ConfigError(
                f"{csvs[0].name}: {file} rep {rep}: neither a trajectory + colour file {name} nor a source "
                f"video {group}/{task}/{file}.mp4 (or {', '.join(VIDEO_SUFFIXES[1:])}) under {root}"
            )
        start = end = -1
        if video is not None:
            try:
                start, end = int(float(row[6])), int(float(row[7]))
            except (ValueError, IndexError):
                start = end = -1
            if not 1 <= start <= end:
                raise ConfigError(
                    f"{csvs[0].name}: {file} rep {rep}: start/end columns (7th and 8th) must be 1-based frame numbers "
                    f"with start <= end to cut the repetition out of {video.name}; got {row[6:8]}"
                )
        if task.lower() not in NEUROFACE_TASKS:
            raise ConfigError(
                f"{csvs[0].name}: {file} rep {rep}: task {task!r} is not a NeuroFace task ({', '.join(NEUROFACE_TASKS)})"
            )
        records.append(
            ClipRecord(
                clip_id=f"{file}_{rep}",
                subject=subject,
                expression=task.lower(),
                label=float(row[13]),
                n_frames=int(float(row[5])),
                frames_dir=frames,
                trajectory=traj.get(name),
                colour=colour.get(name),
                split="",
                video=video,
                video_start=max(start - 1, 0),
                video_end=end,
                files_landmarker=made_by,
            )
        )
    log.info("NeuroFace at %s: %d clips, %d subjects", root, len(records), len({r.subject for r in records}))
    return records


def read_layout(layout: str, root: Path, options: DataSection | None = None) -> list[ClipRecord]:
    """The clips of the ``layout`` dataset under ``root`` (``options``: the run's data section, for UNBC's labels)."""
    opts = options or DataSection(layout=layout)
    if layout == "pfed5":
        return read_pfed5(root)
    if layout == "neuroface":
        return read_neuroface(root)
    if layout == "unbc":
        return read_unbc(root, UnbcOptions(opts.unbc_label, opts.unbc_window, opts.fold))
    raise ConfigError(f"unknown dataset layout {layout!r}; expected one of {sorted(LAYOUTS)}")
