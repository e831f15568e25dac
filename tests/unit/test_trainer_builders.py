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
