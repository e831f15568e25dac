"""The typed checkpoint: one writer, read back with weights_only=True, refusing anything else as ModelError."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from common.errors import ModelError
from common.manifest import Calibration
from trainer import checkpoint
from trainer.checkpoint import CHECKPOINT_VERSION, Checkpoint
from trainer.models import qafenet

pytestmark = pytest.mark.unit


def _ckpt() -> Checkpoint:
    torch.manual_seed(0)
    model = qafenet.QafeNet(qafenet.micro())
    return Checkpoint(
        family="qafe_net",
        model_config=model.cfg.to_dict(),
        state=model.state_dict(),
        protocol="pfed5",
        task="smile",
        label_min=0.0,
        label_max=4.0,
        fps=25.0,
        landmarker="phantom",
        epoch=7,
        val_spearman=0.81,
        data_hash="0123456789abcdef",
    )


def test_round_trip_rebuilds_the_model_from_the_file_alone(tmp_path: Path) -> None:
    ckpt = _ckpt().with_calibration(Calibration(0.5, 1.0, 0.0, 4.0, "validation", 12), {"val_mae_raw": 1.5})
    checkpoint.save(tmp_path / "best.pt", ckpt)
    back = checkpoint.read(tmp_path / "best.pt")
    assert back.calibration == ckpt.calibration and back.calibration_report == {"val_mae_raw": 1.5}
    assert (back.family, back.task, back.epoch, back.landmarker, back.version) == ("qafe_net", "smile", 7, "phantom",
                                                                                   CHECKPOINT_VERSION)  # fmt: skip
    model = back.model()
    assert not model.training
    for k, v in ckpt.state.items():
        assert torch.equal(model.state_dict()[k], v)
    torch.load(tmp_path / "best.pt", weights_only=True)  # plain tensors and values only


def test_an_unfinished_run_has_no_calibration_and_says_how_to_finish(tmp_path: Path) -> None:
    checkpoint.save(tmp_path / "best.pt", _ckpt())
    back = checkpoint.read(tmp_path / "best.pt")
    assert back.calibration is None
    with pytest.raises(ModelError, match="--resume"):
        back.require_calibration(tmp_path / "best.pt")


def test_old_foreign_and_broken_files_are_refused(tmp_path: Path) -> None:
    old = tmp_path / "old.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "model_config": {}, "expression": "smile", "epoch": 3}, old)
    with pytest.raises(ModelError, match="retrain"):
        checkpoint.read(old)
    good = tmp_path / "good.pt"
    checkpoint.save(good, _ckpt())
    raw = torch.load(good, weights_only=True)
    raw.pop("fps")
    missing = tmp_path / "missing.pt"
    torch.save(raw, missing)
    with pytest.raises(ModelError, match="'fps'"):
        checkpoint.read(missing)

    class Trap:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("true",))

    trap = tmp_path / "trap.pt"
    torch.save({"version": CHECKPOINT_VERSION, "x": Trap()}, trap)
    with pytest.raises(ModelError, match="never contains"):
        checkpoint.read(trap)
    wrong = dataclasses.replace(_ckpt(), model_config={**_ckpt().model_config, "rgb_frames": 6})
    checkpoint.save(tmp_path / "wrong.pt", wrong)
    with pytest.raises(ModelError, match="does not build"):
        checkpoint.read(tmp_path / "wrong.pt").model()


def test_artifacts_go_under_protocol_and_task_and_benchmarks_have_none(tmp_path: Path) -> None:
    from trainer.export import artifact_folder

    assert artifact_folder(tmp_path, _ckpt(), "3") == tmp_path / "pfed5" / "smile" / "3"
    with pytest.raises(ModelError, match="not a protocol task"):
        artifact_folder(tmp_path, dataclasses.replace(_ckpt(), protocol="unbc", task="pain"), "1")
    with pytest.raises(ModelError, match="plain folder name"):
        artifact_folder(tmp_path, _ckpt(), "../x")
