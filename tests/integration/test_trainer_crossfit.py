"""The cross-fitted calibration (``train.calibration = cross_fit``) end to end on the fair phantom's smiles: fitted on
out-of-fold predictions of every training and validation clip (never a test clip), by fold models trained for the
final model's best epoch count, while the final model itself trains exactly as with the validation calibration.

The two trainings (``feqa train`` with either calibration, :data:`tests.fair_smile_runs.CROSSFIT_EPOCHS` epochs)
run in the build ``fair-smile`` beside the tests (tests/fair_smile_runs.py), as this test ran them before, and so
does the recomputation of the out-of-fold predictions the calibration must have been fitted on (in the process that
trained: training is bit-reproducible only under one string-hash seed, and this process has another)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import fair_smile_runs as runs
from tests.prebuild import Prebuilds
from trainer import checkpoint
from trainer.calibration import fit_calibration
from trainer.config import load_resolved
from trainer.data.dataset import load_dataset

pytestmark = [pytest.mark.integration, pytest.mark.prebuilt("fair-smile")]


def test_cross_fit_calibration_uses_every_training_and_validation_clip_out_of_fold(prebuilt: Prebuilds) -> None:
    built = prebuilt.wait("fair-smile", timeout_s=900)
    crossed, plain = built / runs.CROSS, built / runs.PLAIN
    cfg = load_resolved(crossed / "config.toml")
    data = load_dataset(cfg, None).expressions["smile"]
    ckpt, other = (checkpoint.read(r / "smile" / "best.pt") for r in (crossed, plain))
    # the final model is the same either way: only its calibration differs
    assert ckpt.epoch == other.epoch and all(torch.equal(ckpt.state[k], other.state[k]) for k in ckpt.state)
    assert other.calibration is not None and other.calibration.fitted_on in ("validation", "none")
    folds = [m for m in runs.logged(crossed) if "cross-fit fold" in m]
    assert len(folds) == 3 and all(f"{ckpt.epoch} epochs on" in m for m in folds)
    # what best.pt holds is the fit on the out-of-fold predictions of every training and validation clip (the fold
    # models are seeded, so the build recomputed them after the training, in its process: tests/fair_smile_runs.py);
    # on this small set a fold model may rank its clips backwards, and then the fit is refused (the identity)
    # exactly as a validation fit would be
    pred, label, epochs = runs.out_of_fold_of(crossed)
    assert epochs == ckpt.epoch
    assert sorted(label.tolist()) == sorted(c.record.label for c in data.train + data.val)
    expected = fit_calibration(pred, label, (cfg.data.label_min, cfg.data.label_max), source="cross_fit")
    assert ckpt.calibration == expected.calibration
    assert ckpt.calibration_report["val_mae_raw"] == pytest.approx(float(np.abs(pred - label).mean()), rel=1e-6)
    assert ckpt.calibration_report["val_mae_raw"] != pytest.approx(other.calibration_report["val_mae_raw"])
    if expected.calibration.fitted_on == "cross_fit":
        assert expected.calibration.n == len(data.train) + len(data.val)
