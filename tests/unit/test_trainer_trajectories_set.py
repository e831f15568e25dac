"""A phantom set written with ``--contents trajectories`` (trajectory and colour files, no frames): the
trajectory-only model and the baselines read it; a model that reads frames is refused before any clip is cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.errors import ConfigError
from phantom.dataset import write_pfed5
from trainer.baselines import clip_baselines
from trainer.config import resolve
from trainer.data.dataset import load_dataset, load_eval_set

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pfed5(tmp_path_factory.mktemp("traj"), n_subjects=8, seed=2, width=96, height=72, fps=4.0,
                       contents="trajectories", only=("smile",))  # fmt: skip


def _sets(root: Path, *extra: str) -> list[str]:
    return [f'data.root="{root}"', 'data.expressions=["smile"]', "data.fps=4.0", "data.val_fraction=0.25", *extra]


@pytest.mark.parametrize("extra", [(), ("model.family=qafe_net",)])
def test_a_model_that_reads_frames_is_refused_before_caching(trajectories: Path, extra: tuple[str, ...]) -> None:
    cfg = resolve(["micro"], _sets(trajectories, *extra))
    for load in (lambda: load_dataset(cfg), lambda: load_eval_set(cfg, trajectories)):
        with pytest.raises(ConfigError, match=r"no frames .*--set model\.rgb=false.*--contents crops"):
            load()
    assert not (trajectories / ".feqa-cache").exists()


def test_the_trajectory_only_model_and_the_baselines_read_it(trajectories: Path) -> None:
    for mode in ("auto", "files"):
        data = load_dataset(resolve(["micro"], _sets(trajectories, "model.rgb=false", f'data.landmarks="{mode}"')))
        smile = data.expressions["smile"]
        assert smile.train and smile.val and smile.test and not data.skipped
        clip = smile.train[0]
        traj, frames = clip.load()
        raw = np.load(clip.record.trajectory) if clip.record.trajectory is not None else None
        assert raw is not None and traj.shape == (raw.shape[0], 63, 5) and frames.shape[0] == 0
        scores = clip_baselines(smile.train + smile.val, smile.test, "smile", 4.0, (0.0, 4.0))
        assert np.isfinite(scores["peak_displacement"].mae) and scores["length"].spearman is not None


def test_a_cache_write_keeps_off_another_processs_temporary_file(tmp_path: Path) -> None:
    # two runs building one cache at once (two seeds started together) wrote the same "<key>.tmp.npz": the first
    # rename took the other's file away and that run died with FileNotFoundError
    from trainer.data.cache import _write

    target = tmp_path / "cache" / "abc.npz"
    target.parent.mkdir()
    foreign = [target.with_suffix(".tmp.npz"), target.with_name("abc.1.tmp.npz")]
    for f in foreign:
        f.write_bytes(b"another run's half-written file")
    _write(target, trajectory=np.ones((2, 63, 5), np.float32))
    assert all(f.read_bytes() == b"another run's half-written file" for f in foreign)
    with np.load(target) as data:
        assert data["trajectory"].shape == (2, 63, 5)
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(["abc.npz", *(f.name for f in foreign)])
