"""Official checkpoint key maps: strict round trips, and loud failures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from common.errors import ModelError
from trainer.keymaps import FORMER_DFER, FORMER_DFER_RELEASED, SKATEFORMER
from trainer.models import formerdfer, skateformer
from trainer.pretrained import load_file, load_strict

pytestmark = pytest.mark.unit


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_skateformer_round_trip_strict(tmp_path: Path) -> None:
    src = skateformer.SkateFormer(skateformer.micro())
    official = {"module." + k: v for k, v in SKATEFORMER.to_official(src.state_dict()).items()}
    assert any(k.startswith("module.stages.1.blocks.0.transformer.") for k in official)
    official["module.head.weight"] = torch.zeros(1, 16)  # the pre-training head is dropped by the map
    path = tmp_path / "skate.pth"
    torch.save({"model": official}, path)
    dst = skateformer.SkateFormer(skateformer.micro())
    load_file(dst, path, SKATEFORMER)
    assert _equal(src.state_dict(), dst.state_dict())


def test_former_dfer_round_trip_strict() -> None:
    src = formerdfer.FormerDFER(formerdfer.micro())
    official = FORMER_DFER.to_official(src.state_dict())
    assert "s_former.spatial_transformer.layers.0.0.fn.fn.to_qkv.weight" in official
    assert "t_former.spatial_transformer.layers.0.1.fn.fn.net.3.bias" in official
    official["fc.weight"] = torch.zeros(7, 16)
    dst = formerdfer.FormerDFER(formerdfer.micro())
    load_strict(dst, official, FORMER_DFER)
    assert _equal(src.state_dict(), dst.state_dict())


def test_released_file_extra_layers_are_dropped_explicitly() -> None:
    src = formerdfer.FormerDFER(formerdfer.micro())
    official = FORMER_DFER.to_official(src.state_dict())
    official["s_former.spatial_transformer.layers.1.0.fn.norm.weight"] = torch.ones(16)
    with pytest.raises(ModelError, match="does not fit"):
        load_strict(formerdfer.FormerDFER(formerdfer.micro()), official, FORMER_DFER)
    load_strict(formerdfer.FormerDFER(formerdfer.micro()), official, FORMER_DFER_RELEASED)


def test_missing_unknown_and_misshapen_keys_fail() -> None:
    src = skateformer.SkateFormer(skateformer.micro())
    official = SKATEFORMER.to_official(src.state_dict())
    dst = skateformer.SkateFormer(skateformer.micro())
    with pytest.raises(ModelError, match="match no rule"):
        load_strict(dst, {**official, "mystery.weight": torch.zeros(1)}, SKATEFORMER)
    missing = dict(official)
    missing.pop("joint_person_embedding")
    with pytest.raises(ModelError, match="joint_embedding"):
        load_strict(dst, missing, SKATEFORMER)
    bad = {**official, "joint_person_embedding": torch.zeros(3, 3)}
    with pytest.raises(ModelError, match="size mismatch"):
        load_strict(dst, bad, SKATEFORMER)
    with pytest.raises(ModelError, match="no checkpoint"):
        load_file(dst, Path("does-not-exist.pth"), SKATEFORMER)
