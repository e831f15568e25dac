"""Dataset layout readers: clips find their frame folders, labels and files; a missing file is a clear error."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.errors import ConfigError
from trainer.data.layouts import read_layout, read_neuroface, read_pfed5
from trainer.data.splits import split_by_subject

pytestmark = pytest.mark.unit


def _clip_files(frames: Path, traj: Path, colour: Path, n: int) -> None:
    frames.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        cv2.imwrite(str(frames / f"{k + 1:05d}.jpg"), np.full((8, 8, 3), 10 * k, np.uint8))
    traj.parent.mkdir(parents=True, exist_ok=True)
    colour.parent.mkdir(parents=True, exist_ok=True)
    np.save(traj, np.zeros((n, 73, 2), np.int32))
    np.save(colour, np.zeros((n, 71, 3), np.float32))


def _csv(path: Path, rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([["videoID_subjectID", "label", "frame length", "class"], *rows])


def _pfed5(root: Path) -> None:
    for subject, video, n in (("001", "21-000100_1", 5), ("002", "21-000200_3", 4)):
        _clip_files(
            root / "PFED5" / subject / video,
            root / "landmarks" / subject / f"{video}-{subject}.npy",
            root / "RGB_1x1_fromLK" / subject / f"{video}-{subject}.npy",
            n,
        )
    _csv(root / "PFED5" / "PFED5_train.csv", [["21-000100_1_001", 3, 5, 1]])
    _csv(root / "PFED5" / "PFED5_test.csv", [["21-000200_3_002", 1, 4, 3]])


def test_pfed5_clips_find_their_own_frame_folder(tmp_path: Path) -> None:
    _pfed5(tmp_path)
    # Decoys: the same clip folder under another subject, and the right subject/clip path (sorted first) with no frames.
    (tmp_path / "PFED5" / "009" / "21-000100_1").mkdir(parents=True)
    (tmp_path / "PFED5" / "009" / "21-000100_1" / "00001.jpg").write_bytes(b"x")
    (tmp_path / "0copy" / "002" / "21-000200_3").mkdir(parents=True)
    records = {r.clip_id: r for r in read_layout("pfed5", tmp_path)}
    smile, squeeze = records["21-000100_1_001"], records["21-000200_3_002"]
    assert smile.frames_dir == tmp_path / "PFED5" / "001" / "21-000100_1"
    assert squeeze.frames_dir == tmp_path / "PFED5" / "002" / "21-000200_3"
    assert (smile.expression, smile.label, smile.n_frames, smile.split) == ("smile", 3.0, 5, "train")
    assert (squeeze.expression, squeeze.label, squeeze.split) == ("squeeze_eyes", 1.0, "test")
    assert smile.trajectory.name == "21-000100_1-001.npy" and smile.colour.parent.name == "001"


def test_pfed5_missing_files_name_the_clip(tmp_path: Path) -> None:
    _pfed5(tmp_path)
    for f in (tmp_path / "PFED5" / "002" / "21-000200_3").glob("*.jpg"):
        f.unlink()
    # without frames a clip is still read (a trajectory-only model needs none); a model that reads frames is refused
    # by the trainer before caching (tests/unit/test_trainer_trajectories_set.py)
    bare = {r.clip_id: r for r in read_pfed5(tmp_path)}["21-000200_3_002"]
    assert bare.frames_dir is None and bare.has_trajectory and not bare.has_files
    (tmp_path / "landmarks" / "002" / "21-000200_3-002.npy").unlink()
    with pytest.raises(ConfigError, match="21-000200_3_002"):
        read_pfed5(tmp_path)


def test_neuroface_clips_find_their_rep_folder(tmp_path: Path) -> None:
    file = "A009_02_NSM_KISS_color"
    rows = []
    for rep in (1, 2):
        rel = Path("ALS") / "KISS" / file
        _clip_files(
            tmp_path / "frames" / rel / str(rep),
            tmp_path / "landmarks" / rel / f"{file}_{rep}.npy",
            tmp_path / "RGB_1x1" / rel / f"{file}_{rep}.npy",
            3 + rep,
        )
        rows.append([file, "A009", "ALS", "KISS", rep, 3 + rep, 1, 3 + rep, 3, 3, 3, 3, 3, 3.5])
    path = tmp_path / "NeuroFace" / "split_6tasks_sum.csv"
    path.parent.mkdir(parents=True)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([["File Name"] + ["x"] * 13, *rows])
    records = read_neuroface(tmp_path)
    assert [r.frames_dir.name for r in records] == ["1", "2"]
    assert all(r.frames_dir.parent.name == file and r.expression == "kiss" and r.label == 3.5 for r in records)
    assert [r.n_frames for r in records] == [4, 5]


def test_unknown_layout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dataset layout"):
        read_layout("pfed6", tmp_path)


def test_split_refuses_too_few_training_subjects(tmp_path: Path) -> None:
    _pfed5(tmp_path)
    records = read_pfed5(tmp_path)
    with pytest.raises(ConfigError, match="cannot spare"):
        split_by_subject(records, val_fraction=0.2, test_fraction=0.25, seed=0)
