"""Checkpoint files written the way the reference training scripts write them load safely, or fail as ModelError.

A helper script, run as its own process, plays the reference scripts: it defines ``RecorderMeter`` in its
``__main__`` (Former-DFER, QAFE-Net) or imports it from ``utils.vis_tools`` (TraMP-Former), keeps a numpy or
CUDA-free tensor best score, the optimiser state and ``module.``-prefixed weights, and calls ``torch.save``. The
weights themselves come from our models through the key maps, so a successful load must give back exactly them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

from common.errors import ModelError
from trainer.keymaps import FORMER_DFER, QAFE_NET, QAFE_PARTS, SKATEFORMER, TRAMP_FORMER
from trainer.models import formerdfer, qafenet, skateformer, trampformer
from trainer.pretrained import load_file
from trainer.safeload import ReferenceRecorder, read_untrusted

pytestmark = pytest.mark.unit

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import torch

    class RecorderMeter(object):
        def __init__(self, total_epoch):
            self.total_epoch = total_epoch
            self.current_epoch = 0
            self.epoch_losses = np.zeros((total_epoch, 2), dtype=np.float32)
            self.epoch_accuracy = np.zeros((total_epoch, 2), dtype=np.float32)

    class Evil(object):
        def __reduce__(self):
            return (os.system, ("touch " + sys.argv[4],))

    kind, src, dst = sys.argv[1:4]
    weights = torch.load(src, weights_only=True)
    optimizer = {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.9, "params": [0, 1]}]}
    if kind == "former_dfer":  # Former-DFER main_DFEW.py
        rec = RecorderMeter(100)
        rec.epoch_accuracy[0] = (40.0, 45.5)
        state = {"epoch": 100, "state_dict": {"module." + k: v for k, v in weights.items()},
                 "best_acc": torch.tensor(66.2), "optimizer": optimizer, "recorder": rec}
    elif kind == "tramp":  # TraMP-Former main_rgb1x1_128.py
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from utils.vis_tools import RecorderMeter as Recorder
        state = {"epoch": 7, "model": {"module." + k: v for k, v in weights.items()}, "best_pho": np.float64(0.7186),
                 "optimizer": optimizer, "scheduler": {"step_size": 10, "gamma": 0.5, "last_epoch": 7},
                 "recorder": Recorder(100)}
    elif kind == "qafe":  # QAFE-Net main_PFED5.py: one state dict per sub-network
        parts = {p: {k[len(p) + 1:]: v for k, v in weights.items() if k.startswith(p + ".")}
                 for p in ("model", "SlowOnly", "decoder", "evaluator")}
        state = {"epoch": 40, **parts, "best_acc": np.float64(0.6535), "optimizer": optimizer,
                 "recorder": RecorderMeter(100)}
    elif kind == "evil":
        state = {"state_dict": weights, "payload": Evil()}
    torch.save(state, dst)
    """
)


def _reference_save(tmp_path: Path, kind: str, official: dict[str, torch.Tensor]) -> Path:
    """Write ``official`` (official parameter names) the way the reference script of ``kind`` saves checkpoints."""
    (tmp_path / "utils").mkdir(exist_ok=True)
    (tmp_path / "utils" / "__init__.py").write_text("")
    (tmp_path / "utils" / "vis_tools.py").write_text(
        "import numpy as np\n\nclass RecorderMeter(object):\n    def __init__(self, total_epoch):\n"
        "        self.total_epoch = total_epoch\n        self.epoch_losses = np.zeros((total_epoch, 2), np.float32)\n"
    )
    script = tmp_path / "reference_main.py"
    script.write_text(SCRIPT)
    src, dst = tmp_path / f"{kind}-weights.pt", tmp_path / f"{kind}.pth"
    torch.save(official, src)
    run = subprocess.run(
        [sys.executable, str(script), kind, str(src), str(dst), str(tmp_path / "pwned")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return dst


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_former_dfer_file_with_a_main_recorder_and_a_tensor_best(tmp_path: Path) -> None:
    src = formerdfer.FormerDFER(formerdfer.micro())
    official = FORMER_DFER.to_official(src.state_dict())
    path = _reference_save(tmp_path, "former_dfer", {**official, "fc.weight": torch.zeros(7, 16)})
    payload = read_untrusted(path)
    assert isinstance(payload["recorder"], ReferenceRecorder)
    assert payload["recorder"].epoch_accuracy[0].tolist() == [40.0, 45.5]
    dst = formerdfer.FormerDFER(formerdfer.micro())
    load_file(dst, path, FORMER_DFER)
    assert _same(src.state_dict(), dst.state_dict())


def test_tramp_files_with_a_utils_recorder_and_a_numpy_best(tmp_path: Path) -> None:
    src = skateformer.SkateFormer(skateformer.micro())
    path = _reference_save(tmp_path, "tramp", {**SKATEFORMER.to_official(src.state_dict()),
                                               "evaluator.head.weight": torch.zeros(1, 16)})  # fmt: skip
    assert float(read_untrusted(path)["best_pho"]) == pytest.approx(0.7186)
    dst = skateformer.SkateFormer(skateformer.micro())
    load_file(dst, path, SKATEFORMER)
    assert _same(src.state_dict(), dst.state_dict())
    # a whole Quality_Model saved by the same script
    cfg = trampformer.micro()
    whole = trampformer.TrampFormer(trampformer.TrampFormerConfig(**{**cfg.__dict__, "fusion": "reference"}))
    path = _reference_save(tmp_path, "tramp", TRAMP_FORMER.to_official(whole.state_dict()))
    again = trampformer.TrampFormer(whole.cfg)
    load_file(again, path, TRAMP_FORMER)
    assert _same(whole.state_dict(), again.state_dict())


def test_qafe_file_with_one_state_dict_per_part(tmp_path: Path) -> None:
    src = qafenet.QafeNet(qafenet.micro())
    official = QAFE_NET.to_official(src.state_dict())
    assert {k.split(".")[0] for k in official} == set(QAFE_PARTS)
    official["decoder.norm.weight"] = torch.ones(32)  # the reference decoder's unused LayerNorm is dropped
    path = _reference_save(tmp_path, "qafe", official)
    dst = qafenet.QafeNet(qafenet.micro())
    load_file(dst, path, QAFE_NET, QAFE_PARTS)
    assert _same(src.state_dict(), dst.state_dict())
    with pytest.raises(ModelError, match="lacks the state dicts"):
        load_file(dst, path, QAFE_NET, (*QAFE_PARTS, "extra"))


def test_a_numpy_1_file_names_numpy_core(tmp_path: Path) -> None:
    """Files written under numpy 1.x name ``numpy.core.multiarray``; rewrite the pickle so it does."""
    src = skateformer.SkateFormer(skateformer.micro())
    path = _reference_save(tmp_path, "tramp", SKATEFORMER.to_official(src.state_dict()))
    old = tmp_path / "np1.pth"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(old, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(item, data)
    assert float(read_untrusted(old)["best_pho"]) == pytest.approx(0.7186)


def test_a_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    src = formerdfer.FormerDFER(formerdfer.micro())
    path = _reference_save(tmp_path, "evil", FORMER_DFER.to_official(src.state_dict()))
    with pytest.raises(ModelError, match="refused to load"):
        load_file(formerdfer.FormerDFER(formerdfer.micro()), path, FORMER_DFER)
    assert not (tmp_path / "pwned").exists()


def test_unreadable_files_are_model_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"a": torch.zeros(2)}}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:200])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    for path in (truncated, garbage, tmp_path / "missing.pth"):
        with pytest.raises(ModelError):
            read_untrusted(path)
    no_tensors = tmp_path / "notes.pth"
    torch.save({"epoch": 3, "state_dict": {"a": 1.0}}, no_tensors)
    with pytest.raises(ModelError, match="not a tensor"):
        load_file(formerdfer.FormerDFER(formerdfer.micro()), no_tensors, FORMER_DFER)
