"""The cross-fitted calibration (``train.calibration = cross_fit``) end to end on the fair phantom's smiles: fitted on
out-of-fold predictions of every training and validation clip (never a test clip), by fold models trained for the
final model's best epoch count, while the final model itself trains exactly as with the validation calibration."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.integration.conftest import FAIR_FPS
from trainer import checkpoint
from trainer.calibration import fit_calibration
from trainer.cli import cli
from trainer.config import load_resolved
from trainer.crossfit import out_of_fold
from trainer.data.dataset import load_dataset

pytestmark = pytest.mark.integration
# What is checked is where the calibration's clips come from and that the final model is unchanged, not how well
# either ranks, so three epochs do (micro's ten made this, with its three fold models trained twice, 135 s of CI).
EPOCHS = 3


def _train(root: Path, run: Path, calibration: str) -> Path:
    args = ["train", "-c", "micro", "--run-dir", str(run)]
    for item in (f'data.root="{root}"', 'data.expressions=["smile"]', f"data.fps={FAIR_FPS}", "model.rgb=false",
                 f"train.calibration={calibration}", "train.calibration_folds=3",
                 f"optim.epochs={EPOCHS}"):  # fmt: skip
        args += ["--set", item]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return run


def test_cross_fit_calibration_uses_every_training_and_validation_clip_out_of_fold(
    fair_pfed5_smile: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="trainer.crossfit"):
        crossed = _train(fair_pfed5_smile, tmp_path / "cross", "cross_fit")
    plain = _train(fair_pfed5_smile, tmp_path / "plain", "validation")
    cfg = load_resolved(crossed / "config.toml")
    data = load_dataset(cfg, None).expressions["smile"]
    ckpt, other = (checkpoint.read(r / "smile" / "best.pt") for r in (crossed, plain))
    # the final model is the same either way: only its calibration differs
    assert ckpt.epoch == other.epoch and all(torch.equal(ckpt.state[k], other.state[k]) for k in ckpt.state)
    assert other.calibration is not None and other.calibration.fitted_on in ("validation", "none")
    folds = [r.getMessage() for r in caplog.records if "cross-fit fold" in r.getMessage()]
    assert len(folds) == 3 and all(f"{ckpt.epoch} epochs on" in m for m in folds)
    # what best.pt holds is the fit on the out-of-fold predictions of every training and validation clip (the fold
    # models are seeded, so they are recomputed here); on this small set a fold model may rank its clips backwards,
    # and then the fit is refused (the identity) exactly as a validation fit would be
    pred, label = out_of_fold(cfg, data, ckpt.epoch, torch.device("cpu"))
    assert sorted(label.tolist()) == sorted(c.record.label for c in data.train + data.val)
    expected = fit_calibration(pred, label, (cfg.data.label_min, cfg.data.label_max), source="cross_fit")
    assert ckpt.calibration == expected.calibration
    assert ckpt.calibration_report["val_mae_raw"] == pytest.approx(float(np.abs(pred - label).mean()), rel=1e-6)
    assert ckpt.calibration_report["val_mae_raw"] != pytest.approx(other.calibration_report["val_mae_raw"])
    if expected.calibration.fitted_on == "cross_fit":
        assert expected.calibration.n == len(data.train) + len(data.val)
