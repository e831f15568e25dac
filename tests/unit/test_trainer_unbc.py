"""UNBC-McMaster layout: sequence VAS labels, frame-level PSPI windows, the subject folds, frame-folder sources."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from common.errors import ConfigError
from trainer.config import DataSection
from trainer.data.landmarking import _frames
from trainer.data.layouts import read_layout
from trainer.data.unbc import UnbcOptions, fold_subjects, read_unbc

pytestmark = pytest.mark.unit


def _layout(root: Path, subjects: int = 2, frames: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for s in range(subjects):
        subject = f"0{40 + s}-ll0{40 + s}"
        seq = f"ll0{40 + s}t1aaaff"
        folder = root / "Images" / subject / seq
        folder.mkdir(parents=True)
        pspi = root / "Frame_Labels" / "PSPI" / subject / seq
        pspi.mkdir(parents=True)
        for i in range(frames):
            img = np.full((24, 32, 3), 10 * i + s, np.uint8)
            cv2.imwrite(str(folder / f"{seq}{i + 1:03d}.png"), img)
            (pspi / f"{seq}{i + 1:03d}_facs.txt").write_text(f"   {float(i * (s + 1)):e}\n")
        vas = root / "Sequence_Labels" / "VAS" / subject
        vas.mkdir(parents=True)
        (vas / f"{seq}.txt").write_text(f"{3.0 + s}\n")
        rng.random()
    return root


def test_vas_one_clip_per_sequence_from_its_frame_folder(tmp_path: Path) -> None:
    records = read_layout("unbc", _layout(tmp_path), DataSection(layout="unbc"))
    assert [(r.subject, r.label, r.n_frames, r.expression) for r in records] == [
        ("040-ll040", 3.0, 6, "pain"),
        ("041-ll041", 4.0, 6, "pain"),
    ]
    r = records[0]
    assert r.video == tmp_path / "Images" / "040-ll040" / "ll040t1aaaff" and r.trajectory is None
    frames = list(_frames(r))
    assert len(frames) == 6 and frames[2][1].shape == (24, 32, 3) and int(frames[2][1][0, 0, 0]) == 20


def test_pspi_windows_are_labelled_with_their_mean(tmp_path: Path) -> None:
    records = read_unbc(_layout(tmp_path), UnbcOptions(label="pspi", window=4))
    first = [r for r in records if r.subject == "041-ll041"]
    # PSPI of subject 1 is 0, 2, 4, 6, 8, 10; windows of 4 at hop 2: frames 0-3 and 2-5
    assert [(r.video_start, r.video_end, r.label) for r in first] == [(0, 4, 3.0), (2, 6, 7.0)]
    assert len({r.clip_id for r in records}) == len(records)
    whole = read_unbc(tmp_path, UnbcOptions(label="pspi"))
    assert [r.label for r in whole] == [2.5, 5.0]
    frames = list(_frames(first[1]))
    assert len(frames) == 4 and int(frames[0][1][0, 0, 0]) == 21  # starts at frame 2 of subject 1


def test_folds_hold_five_runs_of_sorted_subjects(tmp_path: Path) -> None:
    subjects = [f"{i:03d}" for i in range(25)]
    folds = [fold_subjects(subjects, k) for k in range(1, 6)]
    assert all(len(f) == 5 for f in folds) and set().union(*folds) == set(subjects)
    records = read_unbc(_layout(tmp_path), UnbcOptions(fold=1))
    assert [r.split for r in records] == ["test", "train"]
    with pytest.raises(ConfigError, match=r"1\.\.5"):
        fold_subjects(subjects, 6)


def test_bad_layouts_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no Images"):
        read_unbc(tmp_path, UnbcOptions())
    root = _layout(tmp_path / "a")
    (root / "Sequence_Labels" / "VAS" / "040-ll040" / "ll040t1aaaff.txt").unlink()
    with pytest.raises(ConfigError, match="no VAS label"):
        read_unbc(root, UnbcOptions())
    root = _layout(tmp_path / "b")
    (root / "Frame_Labels" / "PSPI" / "041-ll041" / "ll041t1aaaff" / "ll041t1aaaff003_facs.txt").write_text("n/a")
    with pytest.raises(ConfigError, match="expected a number"):
        read_unbc(root, UnbcOptions(label="pspi"))
    with pytest.raises(ConfigError, match="unbc_label"):
        read_unbc(root, UnbcOptions(label="opr"))
