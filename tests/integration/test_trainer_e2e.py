"""End to end on a phantom PFED5-layout dataset: train TraMP-Former (micro config), calibrate on validation, evaluate,
export from best.pt alone with parity and the calibrated ``score`` output, CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from common.manifest import Calibration, Manifest
from tests import smile_cohort
from tests.prebuild import Prebuilds
from trainer import checkpoint
from trainer.baselines import clip_baselines, margin_over_baselines
from trainer.checkpoint import Checkpoint
from trainer.cli import cli
from trainer.config import load_resolved
from trainer.data.dataset import load_dataset

pytestmark = [pytest.mark.integration, pytest.mark.prebuilt("smile-cohort")]


# 5 fps keeps every clip (about 14-32 frames) close to the micro model's 16-frame trajectory window, so the window
# holds the movement itself rather than only the idle tail. The cohort is the fair phantom's own: timing drawn
# independently of severity (clip length ranks nothing: Spearman -0.04 here) and every nuisance (expressiveness,
# tremor, blinks, asymmetry, occlusions, lighting, framing, head motion, rater noise). Smile clips only, from 48
# subjects: 69 train / 36 validation / 39 test clips. (On 16 subjects, 24 training clips, the validation Spearman
# never rose above chance and a test pass was luck. Until the phantom was made fair this test's Spearman > 0.5 passed
# on clip length alone.) Measured once: test Spearman 0.60, calibrated MAE 0.77; the distance and kinematics baselines
# on the same clips get 0.78 / 0.70 and 0.78 / 0.68.
FPS = smile_cohort.FPS


@pytest.fixture(scope="module")
def dataset(prebuilt: Prebuilds) -> Path:
    """The cohort's PFED5 layout (tests/smile_cohort.py: rendered once per run, in the background)."""
    return prebuilt.wait("smile-cohort", timeout_s=900) / smile_cohort.CROPS


@pytest.fixture(scope="module")
def run_dir(prebuilt: Prebuilds, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the micro run the cohort's build trained on its crops (``smile_cohort.train_args``): the tests
    below write into it (evaluation, a resumed epoch)."""
    run = tmp_path_factory.mktemp("run") / "run"
    shutil.copytree(prebuilt.wait("smile-cohort", timeout_s=900) / smile_cohort.RUN, run)
    return run


def test_training_loss_falls_and_config_is_saved(run_dir: Path) -> None:
    history = json.loads((run_dir / "smile" / "history.json").read_text())
    losses = [h["train_loss"] for h in history]
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    assert 'size = "micro"' in (run_dir / "config.toml").read_text()
    assert (run_dir / "smile" / "best.pt").is_file() and (run_dir / "smile" / "last.pt").is_file()


def _checkpoint(run_dir: Path) -> Checkpoint:
    return checkpoint.read(run_dir / "smile" / "best.pt")


def test_best_checkpoint_is_typed_and_holds_a_validation_fitted_calibration(run_dir: Path) -> None:
    ckpt = _checkpoint(run_dir)
    assert (ckpt.family, ckpt.protocol, ckpt.task, ckpt.fps) == ("tramp_former", "pfed5", "smile", FPS)
    assert (ckpt.label_min, ckpt.label_max) == (0.0, 4.0) and ckpt.landmarker == "phantom"
    assert ckpt.model_config["skate"]["bias_index"] == "centred"  # no official weights: our rule
    assert ckpt.model_config["time_index"] == "window" and ckpt.model_config["skate"]["motion_channels"]
    assert ckpt.epoch >= 1 and len(ckpt.data_hash) == 16
    cal = ckpt.calibration
    assert cal is not None and cal.fitted_on == "validation" and cal.scale > 0 and cal.n >= 4
    assert (cal.clamp_min, cal.clamp_max) == (0.0, 4.0)
    # BMC's raw output sits off the label scale; the validation-fitted map brings it much closer
    assert ckpt.calibration_report["val_mae_calibrated"] < ckpt.calibration_report["val_mae_raw"]
    # our own files hold only tensors, numbers and strings
    torch.load(run_dir / "smile" / "best.pt", weights_only=True)
    torch.load(run_dir / "smile" / "last.pt", weights_only=True)


def test_evaluate_held_out_spearman_and_plots(run_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["evaluate", str(run_dir), "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    fitted = _checkpoint(run_dir).calibration
    metrics = json.loads((run_dir / "metrics.json").read_text())
    smile = metrics["expressions"]["smile"]
    cfg = load_resolved(run_dir / "config.toml")
    data = load_dataset(cfg).expressions["smile"]
    scores = clip_baselines(data.train + data.val, data.test, "smile", FPS, (0.0, 4.0))
    # evaluate reports the same baselines beside the model (fitted on training and validation subjects, scored on
    # the test clips), and the model's Spearman margin over the best ranking one
    assert smile["baselines"] == {k: {"spearman": v.spearman, "mae": v.mae} for k, v in scores.items()}
    assert smile["margin_over_baselines"] == pytest.approx(margin_over_baselines(smile["spearman"], scores))
    assert smile["spearman"] > 0.5, smile["spearman"]
    assert "vs baselines" in result.output
    lo, hi = smile["spearman_ci"]
    assert lo <= smile["spearman"] <= hi
    assert smile["per_subject_mae"] and smile["rmse"] >= smile["mae"]
    # BMC leaves the raw scores stretched and shifted (raw MAE about 1.8 here); the affine map fitted on validation
    # clips brings the test error under one grade (about 0.4 here).
    assert Calibration.from_dict(smile["calibration"]) == fitted
    assert smile["rmse_calibrated"] >= smile["mae_calibrated"]
    assert smile["mae_calibrated"] < smile["mae"] and smile["mae_calibrated"] < 1.0
    assert smile["spearman_calibrated"] > 0.5
    assert "calibrated Spearman" in result.output and "fitted on validation" in result.output
    # The trivial baselines sit beside the model on the same test clips: clip length ranks nothing on the fair
    # phantom, and the model ranks well above it and is closer than the constant. (It does not yet beat the one-
    # distance and kinematics baselines here: about 0.78 Spearman, MAE 0.70 and 0.68; the README's training section.)
    assert "model beside the baselines on test subjects" in result.output
    base = smile["baselines"]
    assert abs(base["length"]["spearman"]) < 0.3 and base["constant"]["spearman"] == 0.0
    assert smile["spearman"] > base["length"]["spearman"] + 0.3
    assert smile["mae_calibrated"] < base["constant"]["mae"]
    assert smile["mae_vs_best_baseline"] == pytest.approx(
        smile["mae_calibrated"] / min(b["mae"] for b in base.values()), rel=1e-6
    )
    for png in ("spearman.png", "pred_vs_true_smile.png", "loss_smile.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _window_inputs(manifest: Manifest, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Window-graph inputs that drive the raw output across and beyond the label scale.

    Random frame features and trajectories at gains up to 1e4 push the calibrated output off the label scale;
    trajectories that drift steadily over the window, at gains swept over five decades, read as ever larger
    movements.
    """
    shapes = {s.name: tuple(int(d) for d in s.shape[1:]) for s in manifest.graphs["window"].inputs}
    batch = 32
    index_t = np.broadcast_to(np.linspace(-1, 1, shapes["index_t"][0], dtype=np.float32), (batch, *shapes["index_t"]))
    still = [
        {
            "frame_features": (gain * rng.standard_normal((batch, *shapes["frame_features"]))).astype(np.float32),
            "trajectory": (gain * rng.standard_normal((batch, *shapes["trajectory"]))).astype(np.float32),
            "index_t": index_t.copy(),
        }
        for gain in (1.0, 100.0, 1e4)
    ]
    t_p = shapes["trajectory"][0]
    drift = np.linspace(0, 1, t_p, dtype=np.float32)[None, :, None, None] * np.ones(shapes["trajectory"], np.float32)
    gains = np.logspace(-1, 4, batch, dtype=np.float32)[:, None, None, None]
    moving = {
        "frame_features": np.zeros((batch, *shapes["frame_features"]), np.float32),
        "trajectory": (drift * gains).astype(np.float32),
        "index_t": index_t.copy(),
    }
    return [*still, moving]


def test_export_parity_calibrated_score_and_manifest(run_dir: Path, prebuilt: Prebuilds) -> None:
    # best.pt alone is enough: the cohort's build exported it from a folder holding nothing else (a failed export
    # fails the build: tests/smile_cohort.py, export_best_alone)
    folder = prebuilt.wait("smile-cohort", timeout_s=900) / smile_cohort.EXPORTED / "pfed5" / "smile" / "3"
    manifest = Manifest.read(folder)
    manifest.check_compatible()
    assert manifest.task == "smile" and manifest.t_p == 16 and set(manifest.graphs) == {"frame", "window", "clip"}
    assert (manifest.family, manifest.protocol, manifest.fps, manifest.landmarker) == ("tramp_former", "pfed5", FPS,
                                                                                      "phantom")  # fmt: skip
    assert manifest.heatmap is None and manifest.time_index == "window"
    assert all(manifest.metrics[f"parity_max_abs_{k}"] <= 1e-4 for k in manifest.graphs)
    cal = manifest.calibration
    assert cal == _checkpoint(run_dir).calibration and cal.fitted_on == "validation"
    for graph in ("window", "clip"):
        assert [o.name for o in manifest.graphs[graph].outputs] == ["score", "raw"]
        sess = ort.InferenceSession(str(folder / manifest.graphs[graph].file), providers=["CPUExecutionProvider"])
        assert [o.name for o in sess.get_outputs()] == ["score", "raw"]
    assert [o.name for o in manifest.graphs["frame"].outputs] == ["features"]
    sess = ort.InferenceSession(str(folder / manifest.graphs["window"].file), providers=["CPUExecutionProvider"])
    raws, scores = [], []
    for feeds in _window_inputs(manifest, np.random.default_rng(7)):
        score, raw = sess.run(["score", "raw"], feeds)
        assert score.shape == raw.shape == (32,)  # dynamic batch
        np.testing.assert_allclose(score, np.clip(cal.scale * raw + cal.offset, 0.0, 4.0), rtol=0, atol=1e-5)
        raws.append(raw)
        scores.append(score)
    raw_all, score_all = np.concatenate(raws), np.concatenate(scores)
    affine = cal.scale * raw_all + cal.offset
    assert ((affine < 0.0) | (affine > 4.0)).any()  # the clamp was exercised ...
    assert ((score_all >= 0.0) & (score_all <= 4.0)).all()  # ... every shown score is on the label scale ...
    assert ((score_all > 0.1) & (score_all < 3.9)).sum() >= 3  # ... and the affine part was exercised too


def test_resume_continues_from_last_epoch(run_dir: Path, dataset: Path) -> None:
    result = CliRunner().invoke(cli, [*smile_cohort.train_args(dataset, run_dir, "optim.epochs=11"), "--resume"])
    assert result.exit_code == 0, result.output
    history = json.loads((run_dir / "smile" / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 12))


def test_an_unfinished_checkpoint_is_refused_by_evaluate_and_export(run_dir: Path, tmp_path: Path) -> None:
    unfinished = tmp_path / "run"
    (unfinished / "smile").mkdir(parents=True)
    (unfinished / "config.toml").write_text((run_dir / "config.toml").read_text())
    checkpoint.save(unfinished / "smile" / "best.pt", dataclasses.replace(_checkpoint(run_dir), calibration=None))
    for args in (["evaluate", str(unfinished)], ["export", str(unfinished), "--models-dir", str(tmp_path / "m")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code != 0 and "--resume" in result.output, result.output
    assert not (tmp_path / "m").exists()


def test_bad_dataset_root_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "-c", "micro", "--set", f'data.root="{tmp_path}"', "--run-dir",
                                      str(tmp_path / "r")])  # fmt: skip
    assert result.exit_code != 0 and "no PFED5 label file" in result.output
