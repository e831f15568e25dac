"""Synthetic datasets in the PFED5 and Toronto NeuroFace layouts, read back the way the reference loaders read them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from phantom.crop import crop_frame, face_box
from phantom.dataset import NEUROFACE_FOLDS, PFED5_TRAIN_IDS, neuroface_subjects, write_neuroface, write_pfed5
from phantom.face import Phantom
from phantom.spec import PatientSpec

pytestmark = pytest.mark.unit


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def _check_clip(frames: Path, traj: Path, colour: Path, n: int) -> None:
    jpgs = sorted(frames.glob("*.jpg"))
    assert len(jpgs) == n and jpgs[0].name == "00001.jpg"
    img = cv2.imread(str(jpgs[-1]))
    assert img is not None and img.shape == (256, 256, 3)
    t = np.load(traj)
    assert t.shape == (n, 73, 2) and t.dtype == np.int32
    assert t.min() >= 0 and t.max() <= 256
    c = np.load(colour)
    assert c.shape == (n, 71, 3) and c.min() >= 0 and c.max() <= 255
    # what the TraMP loader does: drop entries 1 and 54 (eye centres), anchor on entry 52 (nose tip), add colour
    kept = np.delete(np.delete(t, 1, 1), 54, 1)
    assert kept.shape == (n, 71, 2)
    feats = np.concatenate([kept - kept[0, 52], c], axis=-1)
    assert feats.shape == (n, 71, 5)


def test_pfed5_layout(tmp_path: Path) -> None:
    root = write_pfed5(tmp_path / "pfed5", n_subjects=2, clips_per_task=1, seed=3, width=320, height=240, fps=10)
    splits = json.loads((root / "splits.json").read_text())
    assert splits["train"] == [PFED5_TRAIN_IDS[0]] and len(splits["test"]) == 1
    assert splits["test"][0] not in PFED5_TRAIN_IDS
    for split, qafe, tramp in (("train", "PFED5_train.csv", "train_41.csv"), ("test", "PFED5_test.csv", "test_41.csv")):
        qh, qrows = _rows(root / "PFED5" / qafe)
        th, trows = _rows(root / "data" / tramp)
        assert qh[3] == "class" and th[4] == "class"
        assert len(qrows) == len(trows) == 5
        assert sorted(int(r[3]) for r in qrows) == [0, 1, 2, 3, 4]
        for q, tr in zip(qrows, trows, strict=True):
            assert q[:3] == tr[:3] and q[3] == tr[4]
            clip_id, label, n = q[0], int(q[1]), int(q[2])
            video_id, subject = clip_id[:11], clip_id.rsplit("_", 1)[1]
            assert subject in splits[split] and 0 <= label <= 4
            assert video_id[-1] == q[3] and float(tr[3]) == pytest.approx(n / 10, abs=0.01)
            name = f"{video_id}-{subject}.npy"
            _check_clip(
                root / "PFED5" / subject / video_id,
                root / "landmarks" / subject / name,
                root / "RGB_1x1_fromLK" / subject / name,
                n,
            )
    _, manifest = _rows(root / "phantom_clips.csv")
    specs = [PatientSpec.from_json(r[2]) for r in manifest]
    assert len(specs) == 10 and {s.protocol for s in specs} == {"pfed5"}
    _, train_rows = _rows(root / "data" / "train_41.csv")
    labels = {r[0]: int(r[1]) for r in train_rows}
    # the label is a rater's reading of the face's latent severity (the spec's), so it is near it, not equal
    assert all(abs(labels[r[0]] - s.severity) < 1.5 for r, s in zip(manifest, specs, strict=True) if r[0] in labels)


def test_neuroface_layout(tmp_path: Path) -> None:
    root = write_neuroface(
        tmp_path / "tnf", n_subjects=2, reps=2, seed=1, width=320, height=240, fps=10, tasks=("blow", "brow")
    )
    header, rows = _rows(root / "NeuroFace" / "split_6tasks_sum.csv")
    assert len(header) == 14 and header[13] == "sum"
    assert len(rows) == 2 * 2 * 2
    _, split_rows = _rows(root / "data" / "Toronto_NeuroFace_split_.csv")
    assert [r[:2] for r in split_rows] == [[r[0], r[4]] for r in rows]
    subjects = neuroface_subjects(2)
    assert {r[1] for r in rows} == set(subjects)
    assert subjects[0] in NEUROFACE_FOLDS[1] and subjects[1] in NEUROFACE_FOLDS[2]
    lips = [r for r in rows if r[3] in ("BLOW", "KISS")]
    assert len(lips) == 4
    for r in rows:
        file, subject, group, task, rep, n, start, end = r[0], r[1], r[2], r[3], r[4], int(r[5]), int(r[6]), int(r[7])
        assert file.startswith(subject) and task in file and group == {"N": "HC", "A": "ALS"}[subject[0]]
        assert end - start + 1 == n and start >= 1
        assert 1.0 <= float(r[13]) <= 5.0
        rel = Path(group) / task / file
        _check_clip(
            root / "frames" / rel / rep,
            root / "landmarks" / rel / f"{file}_{rep}.npy",
            root / "RGB_1x1" / rel / f"{file}_{rep}.npy",
            n,
        )
    by_file: dict[str, list[list[str]]] = {}
    for r in rows:
        by_file.setdefault(r[0], []).append(r)
    for reps in by_file.values():
        assert [int(r[4]) for r in reps] == [1, 2]
        assert int(reps[1][6]) == int(reps[0][7]) + 1


def test_bad_dataset_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        write_pfed5(tmp_path / "x", n_subjects=1)
    with pytest.raises(ValueError, match="36 subjects"):
        write_neuroface(tmp_path / "y", n_subjects=37)
    with pytest.raises(ValueError, match="unknown PFED5 tasks"):
        write_pfed5(tmp_path / "z", n_subjects=2, only=("smiles",))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_one_task_keeps_the_full_plans_clips(tmp_path: Path) -> None:
    full = write_pfed5(tmp_path / "full", n_subjects=2, seed=6, width=160, height=120, fps=4.0)
    smile = write_pfed5(tmp_path / "smile", n_subjects=2, seed=6, width=160, height=120, fps=4.0, only=("smile",))
    _, full_rows = _rows(full / "phantom_clips.csv")
    _, smile_rows = _rows(smile / "phantom_clips.csv")
    assert smile_rows and len(smile_rows) < len(full_rows)
    assert smile_rows == [r for r in full_rows if json.loads(r[2])["tasks"] == ["smile"]]
    _, labels = _rows(smile / "PFED5" / "PFED5_train.csv")
    assert {int(r[3]) for r in labels} == {1}  # the smile keeps its PFED5 class index


def test_crop_follows_the_reference_rule() -> None:
    ph = Phantom(PatientSpec(seed=2, protocol="pfed5", severity=1, reps=1), 640, 480, 10)
    rgb, lm = ph.render(5), ph.truth(5).landmarks
    x1, y1, x2, y2 = face_box(lm)
    assert x1 <= lm[:, 0].min() + 0.5 and x2 >= lm[:, 0].max() - 0.5 and y2 >= lm[:, 1].max() - 0.5
    c = crop_frame(rgb, lm)
    expect = np.round((np.round(lm[33:]) - (x1, y1)) * (256 / (x2 - x1), 256 / (y2 - y1))).astype(np.int32)
    assert np.array_equal(c.points73, expect)
    assert np.array_equal(c.image, cv2.resize(rgb[y1:y2, x1:x2], (256, 256), interpolation=cv2.INTER_LINEAR))


def test_videos_only_datasets_hold_source_recordings_and_no_landmarks(tmp_path: Path) -> None:
    from phantom.video import load_truth, sidecar_path

    root = write_pfed5(tmp_path / "p", n_subjects=2, seed=1, width=160, height=120, fps=6.0, contents="videos")
    assert not list(root.rglob("*.npy")) and not list(root.rglob("*.jpg"))
    _, rows = _rows(root / "data" / "train_41.csv")
    videos = sorted((root / "videos").rglob("*.mp4"))
    assert len(videos) == 10
    for row in rows:  # every labelled clip has its recording, as long as the label file says
        video_id, _, subject = row[0].rpartition("_")
        truth = load_truth(sidecar_path(root / "videos" / subject / f"{video_id}.mp4"))
        assert truth.landmarks.shape[0] == int(row[2]) and (truth.width, truth.height) == (160, 120)
    nf = write_neuroface(tmp_path / "n", n_subjects=1, reps=2, seed=1, width=160, height=120, fps=6.0,
                         tasks=("open",), contents="videos")  # fmt: skip
    (video,) = list((nf / "videos").rglob("*.mp4"))
    assert video.relative_to(nf / "videos").parts == ("HC", "OPEN", "N002_02_NSM_OPEN_color.mp4")
    _, master = _rows(nf / "NeuroFace" / "split_6tasks_sum.csv")
    truth = load_truth(sidecar_path(video))
    assert int(master[-1][7]) == truth.landmarks.shape[0]  # the last repetition ends at the video's last frame
    with pytest.raises(ValueError, match="contents"):
        write_pfed5(tmp_path / "x", contents="frames")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_trajectories_only_writes_the_crops_sets_files_byte_for_byte_without_frames(tmp_path: Path) -> None:
    pairs = [
        [write_pfed5(tmp_path / f"p-{c}", n_subjects=2, seed=4, width=160, height=120, fps=4.0, contents=c)
         for c in ("crops", "trajectories")],
        [write_neuroface(tmp_path / f"n-{c}", n_subjects=1, reps=2, seed=4, width=160, height=120, fps=6.0,
                         tasks=("open",), contents=c) for c in ("crops", "trajectories")],
    ]  # fmt: skip
    for crops_root, traj_root in pairs:
        crops, traj = _files(crops_root), _files(traj_root)
        frames = {k for k in crops if k.endswith(".jpg")}
        assert frames and not any(k.endswith(".jpg") for k in traj)
        assert sum(k.endswith(".npy") for k in traj) >= 4  # a trajectory and a colour file per clip
        assert set(crops) - frames == set(traj)
        assert all(crops[k] == traj[k] for k in traj), [k for k in traj if crops[k] != traj[k]]
