"""TraMP-Former without its RGB stream (``model.rgb = false``) end to end on the fair phantom PFED5 set: a micro run
trains on trajectories alone, evaluates beside the trivial baselines, and exports graphs that take no frames, whose
window graph gives the trainer's own prediction on a test clip. Two such runs (two seeds) are scored as a seed
ensemble by ``feqa evaluate --ensemble``. The set holds trajectory files only (``contents="trajectories"``: no frames
are written, so 64 subjects cost little to write), which also checks that the trajectory-only model trains,
evaluates and exports from such a set. The set and both runs are made by a build beside the tests
(tests/trajectory_runs.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from tests import trajectory_runs
from tests.integration.fair_phantom import export_smile
from tests.prebuild import Prebuilds
from trainer import checkpoint
from trainer.cli import cli
from trainer.config import load_resolved
from trainer.data.dataset import load_dataset
from trainer.data.samples import ClipSamples, sample_spec
from trainer.metrics import spearman
from trainer.predict import labels, predict

pytestmark = [pytest.mark.integration, pytest.mark.prebuilt("trajectory-runs")]


def _copy(prebuilt: Prebuilds, name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of one of the build's runs (tests/trajectory_runs.py): the tests write into it."""
    run = tmp_path_factory.mktemp(name) / name
    shutil.copytree(prebuilt.wait("trajectory-runs", timeout_s=900) / name, run)
    return run


@pytest.fixture(scope="module")
def run_dir(prebuilt: Prebuilds, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 0, :data:`trajectory_runs.EPOCHS` epochs."""
    return _copy(prebuilt, trajectory_runs.RUN, tmp_path_factory)


@pytest.fixture(scope="module")
def other_seed(prebuilt: Prebuilds, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 1, one epoch: the ensemble tests need a second member, not a good one."""
    return _copy(prebuilt, trajectory_runs.OTHER_SEED, tmp_path_factory)


def test_loss_falls_and_the_checkpoint_holds_no_rgb_stream(run_dir: Path) -> None:
    history = json.loads((run_dir / "smile" / "history.json").read_text())
    losses = [h["train_loss"] for h in history]
    assert np.mean(losses[-3:]) < np.mean(losses[:2])
    assert "rgb = false" in (run_dir / "config.toml").read_text()
    ckpt = checkpoint.read(run_dir / "smile" / "best.pt")
    assert ckpt.family == "tramp_former" and ckpt.model_config["use_rgb"] is False
    assert not [k for k in ckpt.state if k.startswith(("rgb_encoder.", "rgb_proj."))] and "query" in ckpt.state
    assert ckpt.calibration is not None and ckpt.calibration.fitted_on == "validation"
    # the dataset items hold no frames: training never decoded them
    clip = load_dataset(load_resolved(run_dir / "config.toml")).expressions["smile"].train[0]
    assert set(ClipSamples([clip], sample_spec(ckpt.model().cfg, train=True))[0]) == {"trajectory", "index_t", "label"}


def test_evaluate_scores_test_subjects_beside_the_baselines(run_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    smile = json.loads((run_dir / "metrics.json").read_text())["expressions"]["smile"]
    assert smile["family"] == "tramp_former" and smile["n"] == 51
    assert {"length", "constant"} <= set(smile["baselines"])
    # Every clip has one length: the length baseline ranks nothing; the model ranks the movement. Measured offline
    # with this set and these epochs (51 test clips from 17 subjects), seeds 0-3: Spearman 0.600, 0.585, 0.693,
    # 0.608 (calibrated MAE 0.81, 0.88, 0.74, 0.86), beside the distance baseline's 0.70 and kinematics' 0.75 (so it
    # does not beat them here; the README's acceptance section has the fair sets). On the 16-subject set this test
    # used before (12 test clips, 10 epochs), seeds 0-3 gave 0.91, -0.30, 0.24, 0.00: too few clips to tell a seed
    # from luck; 48 subjects gave 0.62, 0.47, 0.60, 0.57 (4 epochs) and 96 subjects 0.58, 0.67, 0.53, 0.09 (2 epochs).
    assert smile["baselines"]["length"]["spearman"] == 0.0
    assert smile["spearman"] > 0.5, smile["spearman"]
    best = min(b["mae"] for b in smile["baselines"].values())
    assert smile["mae_vs_best_baseline"] == pytest.approx(smile["mae_calibrated"] / best, rel=1e-6)
    assert "model beside the baselines on test subjects" in result.output


def test_export_has_no_frame_graph_and_reproduces_the_trainer_prediction(run_dir: Path, tmp_path: Path) -> None:
    folder, manifest = export_smile(run_dir, tmp_path)
    assert set(manifest.graphs) == {"window", "clip"} and not manifest.reads_frames
    assert [i.name for i in manifest.graphs["window"].inputs] == ["trajectory", "index_t"]
    ckpt = checkpoint.read(run_dir / "smile" / "best.pt")
    clip = load_dataset(load_resolved(run_dir / "config.toml")).expressions["smile"].test[0]
    item = ClipSamples([clip], sample_spec(ckpt.model().cfg, train=False))[0]
    window = ort.InferenceSession(str(folder / manifest.graphs["window"].file), providers=["CPUExecutionProvider"])
    score, raw = window.run(None, {"trajectory": item["trajectory"].numpy()[None],
                                   "index_t": item["index_t"].numpy()[None]})  # fmt: skip
    want = predict(ckpt.model(), [clip], torch.device("cpu"))
    assert abs(float(raw[0]) - float(want[0])) < 1e-4
    assert abs(float(score[0]) - float(manifest.calibration.apply(want)[0])) < 1e-4


def test_a_seed_ensemble_scores_the_mean_of_the_members_calibrated_predictions(run_dir: Path, other_seed: Path) -> None:
    result = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--bootstrap", "100", "--ensemble", str(other_seed)])
    assert result.exit_code == 0, result.output
    assert "seed ensemble (mean of calibrated predictions" in result.output
    assert "seed ensemble" in (run_dir / "report.txt").read_text()
    smile = json.loads((run_dir / "ensemble.json").read_text())["test"]["expressions"]["smile"]
    test = load_dataset(load_resolved(run_dir / "config.toml")).expressions["smile"].test
    cpu = torch.device("cpu")
    members = [checkpoint.read(r / "smile" / "best.pt") for r in (run_dir, other_seed)]
    assert members[0].calibration != members[1].calibration  # two seeds: two validation fits
    calibrated = [m.calibration.apply(predict(m.model(), test, cpu)) for m in members if m.calibration is not None]
    mean = np.mean(calibrated, axis=0)
    label = labels(test)
    assert smile["members"] == 2 and smile["n"] == len(test)
    assert smile["spearman"] == pytest.approx(spearman(mean, label), abs=1e-9)
    assert smile["mae"] == pytest.approx(float(np.abs(mean - label).mean()), abs=1e-9)
    assert smile["mae_calibrated"] == smile["mae"] and smile["baselines"]["length"]["spearman"] == 0.0
    best = min(b["mae"] for b in smile["baselines"].values())
    assert smile["mae_vs_best_baseline"] == pytest.approx(smile["mae"] / best, rel=1e-6)


def test_an_ensemble_member_trained_on_other_data_is_refused(run_dir: Path, other_seed: Path, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    shutil.copytree(other_seed, stranger)
    config = stranger / "config.toml"
    config.write_text(config.read_text().replace(f"fps = {trajectory_runs.FPS}", "fps = 25.0"))
    result = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--bootstrap", "50", "--ensemble", str(stranger)])
    assert result.exit_code != 0 and "trained on other data" in result.output, result.output
