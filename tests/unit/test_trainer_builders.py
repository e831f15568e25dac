"""Automatic fidelity choices when official weights are loaded, recorded in the model config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from common.errors import ConfigError
from trainer.builders import build_model
from trainer.config import resolve
from trainer.keymaps import FORMER_DFER_RELEASED, SKATEFORMER
from trainer.models import formerdfer, skateformer

pytestmark = pytest.mark.unit


def test_official_skateformer_weights_switch_to_the_reference_bias_index(tmp_path: Path) -> None:
    official = skateformer.SkateFormer(skateformer.micro())
    path = tmp_path / "SkateFormer_256_rgb1x1.pth"
    torch.save({"model": {"module." + k: v for k, v in SKATEFORMER.to_official(official.state_dict()).items()}}, path)
    ours = build_model(resolve(["micro"], []), "smile")
    assert ours.cfg.skate.bias_index == "centred"  # type: ignore[union-attr]
    loaded = build_model(resolve(["micro"], [f'pretrained.skateformer="{path}"']), "smile")
    assert loaded.cfg.skate.bias_index == "reference"  # type: ignore[union-attr]
    assert loaded.cfg.to_dict()["skate"]["bias_index"] == "reference"  # type: ignore[operator]
    for k, v in official.state_dict().items():
        assert torch.equal(loaded.traj_encoder.state_dict()[k], v)  # type: ignore[union-attr, operator]
    forced = build_model(resolve(["micro"], [f'pretrained.skateformer="{path}"', "model.bias_index=centred"]), "smile")
    assert forced.cfg.skate.bias_index == "centred"  # type: ignore[union-attr]


def test_the_released_former_dfer_file_gets_112_pixels_and_no_normalisation(tmp_path: Path) -> None:
    cfg112 = dataclasses.replace(formerdfer.micro(), image_size=112)
    official = formerdfer.FormerDFER(cfg112)
    weights = FORMER_DFER_RELEASED.to_official(official.state_dict())
    weights["s_former.spatial_transformer.layers.1.0.fn.norm.weight"] = torch.ones(16)  # the file's extra layers
    path = tmp_path / "model_set_1.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in weights.items()}}, path)
    sets = [f'pretrained.former_dfer="{path}"', "pretrained.former_dfer_map=former_dfer_released"]
    model = build_model(resolve(["micro"], sets), "smile")
    rgb = model.cfg.rgb  # type: ignore[union-attr]
    assert (rgb.image_size, rgb.mean, rgb.std) == (112, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    for k, v in official.state_dict().items():
        assert torch.equal(model.rgb_encoder.state_dict()[k], v)  # type: ignore[union-attr, operator]
    default = build_model(resolve(["micro"], []), "smile").cfg.rgb  # type: ignore[union-attr]
    assert (default.mean, default.std) == (formerdfer.IMAGENET_MEAN, formerdfer.IMAGENET_STD)


def test_wrong_combinations_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reference fusion"):
        build_model(resolve(["micro"], [f'pretrained.whole="{tmp_path / "x.pth"}"']), "smile")
    with pytest.raises(ConfigError, match="heatmap encoder"):
        build_model(resolve(["micro"], [f'pretrained.slowonly="{tmp_path / "x.pth"}"']), "smile")
    with pytest.raises(ConfigError, match="rgb_norm"):
        build_model(resolve(["micro"], ["model.rgb_norm=sepia"]), "smile")
    with pytest.raises(ConfigError, match="unknown model family"):
        build_model(resolve(["micro"], ["model.family=algrnet"]), "smile")


def test_motion_norm_setting_picks_the_deformation_unit_and_its_scale() -> None:
    default = build_model(resolve(["micro"], []), "smile").cfg.skate  # type: ignore[union-attr]
    assert (default.motion_norm, default.motion_scale) == ("pixels", skateformer.MOTION_SCALES["pixels"])
    iod = build_model(resolve(["micro"], ["model.motion_norm=iod"]), "smile").cfg.skate  # type: ignore[union-attr]
    assert (iod.motion_norm, iod.motion_scale) == ("iod", skateformer.MOTION_SCALES["iod"])
    with pytest.raises(ConfigError, match="motion_norm"):
        build_model(resolve(["micro"], ["model.motion_norm=inches"]), "smile")


def _trajectory_tokens(setting: str, traj: torch.Tensor) -> torch.Tensor:
    """What the trajectory encoder makes of ``traj`` under a ``model.trajectory_inputs`` setting (every setting's
    model starts from the same weights)."""
    torch.manual_seed(0)
    model = build_model(resolve(["micro"], ["model.rgb=false", f"model.trajectory_inputs={setting}"]), "smile")
    model.eval()
    with torch.no_grad():
        out: torch.Tensor = model.traj_encoder(traj, torch.linspace(-1, 1, 16).unsqueeze(0))  # type: ignore[operator]
    return out


def _same(setting: str, a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.allclose(_trajectory_tokens(setting, a), _trajectory_tokens(setting, b), atol=1e-5))


def test_trajectory_inputs_motion_reads_the_movement_not_the_faces_shape_or_colour() -> None:
    torch.manual_seed(3)
    move = torch.zeros(1, 16, 63, 2)
    move[0, 6:12, 45:54, 0] = 4.0  # one region moves for a while

    def face(colour: float) -> torch.Tensor:
        shape = torch.randn(1, 1, 63, 2).expand(1, 16, 63, 2) * 30
        return torch.cat([shape + move, torch.full((1, 16, 63, 3), colour)], dim=-1)

    one, other = face(90.0), face(200.0)
    still = one.clone()
    still[..., :2] -= move
    recoloured = torch.cat([one[..., :2], other[..., 2:]], dim=-1)
    # another face's shape and skin, the same movement: the same tokens; the movement itself is read
    assert _same("motion", one, other)
    assert not _same("motion", one, still)
    # no_colour: another skin alone changes nothing, the face's shape does
    assert _same("no_colour", one, recoloured)
    assert not _same("no_colour", one, other)
    # the default reads both
    assert not _same("all", one, recoloured)
    with pytest.raises(ConfigError, match="trajectory_inputs"):
        build_model(resolve(["micro"], ["model.trajectory_inputs=shape"]), "smile")
    with pytest.raises(ConfigError, match="trajectory_inputs"):
        build_model(resolve(["micro"], ["model.family=qafe_net", "model.trajectory_inputs=motion"]), "smile")
