"""Whole synthetic datasets in the on-disk layouts of PFED5 and Toronto NeuroFace (models.md §4.1, §4.2).

Every clip is one phantom repetition cut from the protocol script, passed through the crop-to-256 rule
(:mod:`phantom.crop`) and written as zero-padded ``00001.jpg`` frames (256x256 crops, as the reference loaders
random-crop 224 from them), a trajectory ``.npy`` [T, 73, 2] int32 of 256-crop pixels and a colour ``.npy``
[T, 71, 3] float32 RGB. Each clip's segment carries random margins before and after the movement, so the label
files' real length columns (frames, duration) do not predict the label. Labels are a rater's reading of the face's
latent severity (:mod:`phantom.plan`); one subject keeps one face and one set of traits (``identity_seed``) across
its clips. ``phantom_clips.csv`` at the root maps every clip to its PatientSpec JSON (with the latent severity).

``contents`` chooses what is written: ``"crops"`` (the distributed form above), ``"trajectories"`` (the same
trajectory and colour ``.npy`` files, label files, ``splits.json`` and ``phantom_clips.csv`` byte for byte, without
the 256-crop JPEG frames: all a trajectory-only model and the baselines read; the frames are still drawn, since the
colour files sample them, but none is encoded or written), ``"videos"`` (only the full-frame source videos, H.264
mp4 with the phantom's truth sidecar: what a clinic's own recordings look like before any landmarking; the trainer
turns them into trajectories with the tracker's code) or ``"both"`` (crops and videos). Videos go to
``videos/<subject>/<video_id>.mp4`` (PFED5: one clip per file) and ``videos/<group>/<TASK>/<file>.mp4`` (NeuroFace:
one file per task holding every repetition; the label file's 1-based ``start``/``end`` columns cut them out).

PFED5 (under ``root``)::

    PFED5/PFED5_train.csv, PFED5/PFED5_test.csv   QAFE: 0 id, 1 label, 2 frames, 3 class
    PFED5/<subject>/<video_id>/00001.jpg ...      frames (data_root = root/PFED5)
    data/train_41.csv, data/test_41.csv           TraMP: 0 id, 1 label, 2 frames, 3 duration, 4 class
    landmarks/<subject>/<video_id>-<subject>.npy  [T, 73, 2] int32
    RGB_1x1_fromLK/<subject>/<video_id>-<subject>.npy  [T, 71, 3]
    splits.json                                   {"train": [...], "test": [...]} subject ids

ids are ``YY-NNNNNN_c_SSS`` (video_id = first 11 characters, c = class 0-4, SSS = subject); training subjects are
taken from the published 30 training ids, test subjects from the other numbers.

Toronto NeuroFace (under ``root``)::

    NeuroFace/split_6tasks_sum.csv   0 file, 1 subject, 2 group, 3 task, 4 repID, 5 frames, 6 start, 7 end,
                                     8 symmetry, 9 ROM, 10 speed, 11 variability, 12 fatigue, 13 sum (= label)
    data/Toronto_NeuroFace_split_.csv  File Name, repID, Number of Frames, start, end (1-based, inclusive)
    frames/<group>/<TASK>/<file>/<repID>/00001.jpg ...
    landmarks/<group>/<TASK>/<file>/<file>_<repID>.npy
    RGB_1x1/<group>/<TASK>/<file>/<file>_<repID>.npy

Subjects are drawn from the three hard-coded test folds (``S007`` without its trailing space); groups are
``ALS`` (A), ``Stroke`` (S, OP) and ``HC`` (N). The five sub-scores repeat the rounded overall label.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from phantom.crop import crop_frame
from phantom.face import Phantom
from phantom.plan import (
    NEUROFACE_FOLDS,
    PFED5_TRAIN_IDS,
    Cohort,
    neuroface_group,
    neuroface_subjects,
    pfed5_subjects,
    plan_neuroface,
    plan_pfed5,
)
from phantom.script import Segment
from phantom.spec import PROTOCOL_TASKS
from phantom.video import write_video

__all__ = [
    "CONTENTS",
    "NEUROFACE_FOLDS",
    "PFED5_TRAIN_IDS",
    "Cohort",
    "neuroface_subjects",
    "pfed5_subjects",
    "write_neuroface",
    "write_pfed5",
]
log = logging.getLogger(__name__)
Progress = Callable[[int], None]
CONTENTS = ("crops", "trajectories", "videos", "both")


def _check_contents(contents: str) -> tuple[bool, bool, bool]:
    """(write trajectory + colour files, write the 256-crop frames, write source videos) for a ``contents`` value."""
    if contents not in CONTENTS:
        raise ValueError(f"contents must be one of {CONTENTS}, got {contents!r}")
    return contents != "videos", contents in ("crops", "both"), contents in ("videos", "both")


def _write_clip(
    phantom: Phantom, seg: Segment, frame_dir: Path | None, traj: Path, colour: Path, progress: Progress | None
) -> int:
    """One clip's trajectory and colour files, and its 256-crop frames unless ``frame_dir`` is None."""
    if frame_dir is not None:
        frame_dir.mkdir(parents=True, exist_ok=True)
    traj.parent.mkdir(parents=True, exist_ok=True)
    colour.parent.mkdir(parents=True, exist_ok=True)
    pts, cols = [], []
    for k, i in enumerate(range(seg.start, seg.end)):
        c = crop_frame(phantom.render(i), phantom.truth(i).landmarks)
        if frame_dir is not None and not cv2.imwrite(
            str(frame_dir / f"{k + 1:05d}.jpg"), c.image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92]
        ):
            raise OSError(f"could not write a frame into {frame_dir}")
        pts.append(c.points73)
        cols.append(c.colour71)
        if progress is not None:
            progress(1)
    np.save(traj, np.stack(pts))
    np.save(colour, np.stack(cols))
    return seg.end - seg.start


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def write_pfed5(
    root: Path,
    n_subjects: int = 4,
    clips_per_task: int = 1,
    seed: int = 0,
    width: int = 640,
    height: int = 480,
    fps: float = 25.0,
    progress: Progress | None = None,
    contents: str = "crops",
    cohort: Cohort | None = None,
    only: tuple[str, ...] = (),
) -> Path:
    """Write a PFED5-layout dataset under ``root``; return ``root``. ``only`` keeps those tasks' clips (all when
    empty); every kept clip is the one the full plan holds (same subject, severity and seeds)."""
    root = Path(root)
    files, frames, videos = _check_contents(contents)
    tasks = PROTOCOL_TASKS["pfed5"]
    unknown = sorted(set(only) - set(tasks))
    if unknown:
        raise ValueError(f"unknown PFED5 tasks {unknown}; expected some of {list(tasks)}")
    plan = [c for c in plan_pfed5(n_subjects, clips_per_task, seed, cohort or Cohort()) if not only or c.task in only]
    rows: dict[str, list[list[object]]] = {"train": [], "test": []}
    manifest: list[list[object]] = []
    for clip in plan:
        cls = tasks.index(clip.task)
        phantom = Phantom(clip.spec, width, height, fps)
        video_id = f"{21 + clip.visit % 5:02d}-{int(clip.subject) * 100 + clip.visit:06d}_{cls}"
        name = f"{video_id}-{clip.subject}"
        seg = phantom.schedule[0]
        n = seg.end - seg.start
        if files:
            _write_clip(
                phantom,
                seg,
                root / "PFED5" / clip.subject / video_id if frames else None,
                root / "landmarks" / clip.subject / f"{name}.npy",
                root / "RGB_1x1_fromLK" / clip.subject / f"{name}.npy",
                progress,
            )
        if videos:
            write_video(
                phantom, root / "videos" / clip.subject / f"{video_id}.mp4", seg.start, seg.end, progress=progress
            )
        rows[clip.split].append([f"{video_id}_{clip.subject}", int(clip.label), n, round(n / fps, 2), cls])
        manifest.append([f"{video_id}_{clip.subject}", clip.split, clip.spec.to_json()])
    header = ["videoID_subjectID", "label", "frame length"]
    for split, qafe, tramp in (("train", "PFED5_train.csv", "train_41.csv"), ("test", "PFED5_test.csv", "test_41.csv")):
        _write_csv(root / "PFED5" / qafe, [*header, "class"], [[r[0], r[1], r[2], r[4]] for r in rows[split]])
        _write_csv(root / "data" / tramp, [*header, "duration", "class"], rows[split])
    _write_csv(root / "phantom_clips.csv", ["clip", "split", "spec"], manifest)
    train, test = pfed5_subjects(n_subjects)
    (root / "splits.json").write_text(json.dumps({"train": train, "test": test}, indent=1))
    log.info("wrote PFED5 layout at %s: %d train / %d test clips", root, len(rows["train"]), len(rows["test"]))
    return root


def write_neuroface(
    root: Path,
    n_subjects: int = 3,
    reps: int = 3,
    seed: int = 0,
    width: int = 640,
    height: int = 480,
    fps: float = 50.0,
    tasks: tuple[str, ...] = PROTOCOL_TASKS["neuroface"],
    progress: Progress | None = None,
    contents: str = "crops",
    cohort: Cohort | None = None,
) -> Path:
    """Write a Toronto NeuroFace-layout dataset under ``root``; return ``root``."""
    root = Path(root)
    files, frames, videos = _check_contents(contents)
    plan = plan_neuroface(n_subjects, reps, seed, tasks, cohort or Cohort())
    master: list[list[object]] = []
    split_rows: list[list[object]] = []
    manifest: list[list[object]] = []
    for clip in plan:
        group = neuroface_group(clip.subject)
        phantom = Phantom(clip.spec, width, height, fps)
        upper = clip.task.upper()
        file = f"{clip.subject}_02_NSM_{upper}_color"
        sub = int(np.clip(round(clip.label), 1, 5))
        rel = Path(group) / upper / file
        if videos:  # one recording per task, from frame 0 so the label file's start/end index it directly
            write_video(phantom, root / "videos" / f"{rel}.mp4", 0, phantom.schedule[-1].end, progress=progress)
        for seg in phantom.schedule:
            rep_id = seg.rep + 1
            n = seg.end - seg.start
            if files:
                _write_clip(
                    phantom,
                    seg,
                    root / "frames" / rel / str(rep_id) if frames else None,
                    root / "landmarks" / rel / f"{file}_{rep_id}.npy",
                    root / "RGB_1x1" / rel / f"{file}_{rep_id}.npy",
                    progress,
                )
            start, end = seg.start + 1, seg.end
            master.append(
                [file, clip.subject, group, upper, rep_id, n, start, end, sub, sub, sub, sub, sub, clip.label]
            )
            split_rows.append([file, rep_id, n, start, end])
        manifest.append([file, clip.subject, clip.spec.to_json()])
    header = ["File Name", "Subject ID", "Group", "Task", "repID", "Number of Frames", "start", "end"]
    header += ["symmetry", "ROM", "speed", "variability", "fatigue", "sum"]
    _write_csv(root / "NeuroFace" / "split_6tasks_sum.csv", header, master)
    _write_csv(
        root / "data" / "Toronto_NeuroFace_split_.csv",
        ["File Name", "repID", "Number of Frames", "start", "end"],
        split_rows,
    )
    _write_csv(root / "phantom_clips.csv", ["file", "subject", "spec"], manifest)
    log.info("wrote Toronto NeuroFace layout at %s: %d clips", root, len(master))
    return root
