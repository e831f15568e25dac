"""TraMP-Former without its RGB stream (``model.rgb = false``): the model, the config that builds it, the export
without a frame graph and the scorer serving that export."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import ConfigError, ModelError
from common.manifest import Calibration, Manifest
from scorer.backends import BackendChoice
from scorer.families import load_model
from trainer.builders import build_model
from trainer.checkpoint import Checkpoint
from trainer.config import resolve
from trainer.export import PARITY_TOLERANCE, export
from trainer.models import trampformer
from trainer.models.families import model_from_config
from trainer.models.trampformer import TrampFormer, TrampTrajectory

pytestmark = pytest.mark.unit


def _no_rgb(t_p: int = 16) -> trampformer.TrampFormerConfig:
    return dataclasses.replace(trampformer.micro(t_p), use_rgb=False)


def _inputs(cfg: trampformer.TrampFormerConfig, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    traj = torch.randn(batch, cfg.skate.t_p, 63, 5, generator=g) * 20
    return traj, torch.linspace(-1, 1, cfg.skate.t_p).expand(batch, -1).contiguous()


def test_trajectory_only_model_has_no_rgb_parameters_and_scores_trajectories() -> None:
    torch.manual_seed(0)
    cfg = _no_rgb()
    model = trampformer.build(cfg)
    assert isinstance(model, TrampTrajectory) and model.INPUTS == ("trajectory", "index_t")
    torch.manual_seed(0)
    full = TrampFormer(trampformer.micro())
    keys, full_keys = set(model.state_dict()), set(full.state_dict())
    rgb_keys = {k for k in full_keys if k.startswith(("rgb_encoder.", "rgb_proj."))}
    assert rgb_keys and keys == (full_keys - rgb_keys) | {"query"}
    assert model.query.shape == (1, 1, cfg.dim)
    n_rgb = sum(p.numel() for k, p in full.named_parameters() if k.startswith(("rgb_encoder.", "rgb_proj.")))
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == sum(p.numel() for p in full.parameters()) - n_rgb + cfg.dim
    # the trajectory stream is built first in both, so one seed gives both the same trajectory encoder
    for k, v in full.traj_encoder.state_dict().items():
        assert torch.equal(model.traj_encoder.state_dict()[k], v)
    model.eval()
    traj, index_t = _inputs(cfg, 3, seed=1)
    with torch.no_grad():
        score = model(traj, index_t)
        assert score.shape == (3,)
        assert torch.equal(score, model.forward_features(traj, index_t))
        alone = torch.cat([model(traj[i : i + 1], index_t[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(score, alone, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(score, model(traj.flip(1), index_t))  # the score follows the movement


def test_the_fusion_attention_is_trained_through_the_learned_query() -> None:
    torch.manual_seed(2)
    model = trampformer.build(_no_rgb()).train()
    traj, index_t = _inputs(model.cfg, 4, seed=3)  # type: ignore[arg-type]
    model(traj, index_t).sum().backward()
    assert isinstance(model, TrampTrajectory) and model.query.grad is not None
    assert float(model.query.grad.abs().sum()) > 0
    q = model.fusion[0].attn.q.weight.grad  # type: ignore[union-attr]
    assert q is not None and float(q.abs().sum()) > 0  # several trajectory tokens as keys: a real softmax


def test_the_config_records_the_choice_and_each_class_refuses_the_other_one() -> None:
    cfg = _no_rgb()
    assert trampformer.TrampFormerConfig.from_dict(cfg.to_dict()) == cfg
    old = trampformer.micro().to_dict()
    del old["use_rgb"]  # a config saved before the switch existed had the RGB stream
    assert trampformer.TrampFormerConfig.from_dict(old).use_rgb
    assert isinstance(model_from_config("tramp_former", cfg.to_dict()), TrampTrajectory)
    assert isinstance(model_from_config("tramp_former", old), TrampFormer)
    with pytest.raises(ValueError, match="trajectory-only"):
        TrampFormer(cfg)
    with pytest.raises(ValueError, match="use_rgb = False"):
        TrampTrajectory(trampformer.micro())


def test_model_rgb_false_builds_the_trajectory_only_model_and_wrong_combinations_are_errors(tmp_path: Path) -> None:
    model = build_model(resolve(["micro"], ["model.rgb=false"]), "smile")
    assert isinstance(model, TrampTrajectory) and model.cfg.use_rgb is False
    assert isinstance(build_model(resolve(["micro"], []), "smile"), TrampFormer)
    with pytest.raises(ConfigError, match="leaves TraMP-Former"):
        build_model(resolve(["qafe", "micro"], ["model.rgb=false"]), "smile")
    with pytest.raises(ConfigError, match="RGB weights"):
        build_model(resolve(["micro"], ["model.rgb=false", f'pretrained.former_dfer="{tmp_path / "x.pth"}"']), "smile")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrampTrajectory, Calibration, Path]:
    torch.manual_seed(5)
    model = trampformer.build(_no_rgb())
    assert isinstance(model, TrampTrajectory)
    model.eval()
    cal = Calibration(scale=0.5, offset=1.0, clamp_min=0.0, clamp_max=4.0, fitted_on="validation", n=10)
    ckpt = Checkpoint(family="tramp_former", model_config=model.cfg.to_dict(), state=model.state_dict(),
                      protocol="pfed5", task="smile", label_min=0.0, label_max=4.0, fps=12.5, landmarker="phantom",
                      epoch=3, val_spearman=0.5, data_hash="test", calibration=cal)  # fmt: skip
    folder = export(ckpt, tmp_path_factory.mktemp("models"), version="1").folder
    return model, cal, folder


def test_export_writes_no_frame_graph_and_its_graphs_take_trajectories_only(
    exported: tuple[TrampTrajectory, Calibration, Path],
) -> None:
    _, _, folder = exported
    manifest = Manifest.read(folder)
    manifest.check_compatible()
    assert set(manifest.graphs) == {"window", "clip"} and not manifest.reads_frames
    assert not (folder / "frame_encoder.onnx").exists()
    assert manifest.model_config["use_rgb"] is False and manifest.t_p == 16
    for spec in manifest.graphs.values():
        assert [t.name for t in spec.inputs] == ["trajectory", "index_t"]
        assert [t.name for t in spec.outputs] == ["score", "raw"]
    assert all(manifest.metrics[f"parity_max_abs_{k}"] <= PARITY_TOLERANCE for k in manifest.graphs)


def test_the_scorer_serves_the_trajectory_only_artifact(exported: tuple[TrampTrajectory, Calibration, Path]) -> None:
    model, cal, folder = exported
    served = load_model(Manifest.read(folder), folder, BackendChoice(intra_op_threads=1))
    assert served.frame is None
    traj, index_t = _inputs(model.cfg, 1, seed=7)
    feeds = served.window_feeds(traj[0].numpy(), index_t[0].numpy(), None)
    assert set(feeds) == {"trajectory", "index_t"}
    out = served.window.run(feeds)
    with torch.no_grad():
        raw = model(traj, index_t).numpy()
    np.testing.assert_allclose(out["raw"], raw, atol=PARITY_TOLERANCE, rtol=0)
    np.testing.assert_allclose(out["score"], cal.apply(raw), atol=PARITY_TOLERANCE, rtol=0)
    clip = served.clip_backend()
    assert clip is not None
    np.testing.assert_allclose(clip.run(feeds)["raw"], raw, atol=PARITY_TOLERANCE, rtol=0)
    with pytest.raises(ModelError, match="no RGB stream"):
        served.window_feeds(traj[0].numpy(), index_t[0].numpy(), np.zeros((8, 16), np.float32))


def test_a_frame_graph_removed_from_an_rgb_artifact_is_refused(
    exported: tuple[TrampTrajectory, Calibration, Path], tmp_path: Path
) -> None:
    """The scorer reads "no RGB stream" from the missing frame graph, and then checks that the window graph takes no
    frame features: an RGB model's artifact that lost its frame graph does not load as a trajectory-only one."""
    torch.manual_seed(6)
    rgb = TrampFormer(trampformer.micro()).eval()
    ckpt = Checkpoint(family="tramp_former", model_config=rgb.cfg.to_dict(), state=rgb.state_dict(), protocol="pfed5",
                      task="smile", label_min=0.0, label_max=4.0, fps=12.5, landmarker="phantom", epoch=1,
                      val_spearman=0.5, data_hash="test")  # fmt: skip
    folder = export(ckpt, tmp_path, version="1", require_calibration=False).folder
    manifest = Manifest.read(folder)
    assert manifest.reads_frames
    crippled = dataclasses.replace(manifest, graphs={k: g for k, g in manifest.graphs.items() if k != "frame"})
    with pytest.raises(ModelError, match="graph inputs"):
        load_model(crippled, folder, BackendChoice(intra_op_threads=1))
