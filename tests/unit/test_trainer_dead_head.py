"""A GELU head cannot die (gradient with every hidden unit switched off) where the reference's ReLU head does, every
size keeps the reference's ReLU and key names by default, and the constant-output check the trainer stops a run with."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from common.errors import ConfigError
from trainer.builders import model_config
from trainer.config import resolve
from trainer.models import trampformer
from trainer.models.trampformer import TrampFormerConfig
from trainer.train import constant_output

pytestmark = pytest.mark.unit

HEAD_KEYS = [f"head.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]


def _switched_off_head_gradient(cfg: TrampFormerConfig) -> tuple[float, float]:
    """Largest |gradient| on the head's first layer and on the trajectory encoder when every unit of the head's last
    hidden layer has a negative pre-activation for every input (checked), as in the run that collapsed."""
    torch.manual_seed(0)
    model = trampformer.build(cfg)
    head = model.head
    assert isinstance(head, nn.Sequential)
    with torch.no_grad():
        head[2].bias.fill_(-3.0)
    seen: list[torch.Tensor] = []
    head[2].register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    traj = torch.randn(4, cfg.skate.t_p, 63, 5)
    index_t = torch.linspace(-1.0, 1.0, cfg.skate.t_p).expand(4, -1)
    model(traj, index_t).sum().backward()
    assert seen and bool((seen[0] < 0).all()), "the test needs every last hidden unit switched off"
    encoder = max(float(p.grad.abs().max()) for p in model.traj_encoder.parameters() if p.grad is not None)
    return float(head[0].weight.grad.abs().max()), encoder  # type: ignore[union-attr]


def test_a_gelu_micro_head_still_passes_gradient_with_every_hidden_unit_switched_off() -> None:
    micro = dataclasses.replace(trampformer.micro(16), use_rgb=False, head_activation="gelu")
    head_grad, encoder_grad = _switched_off_head_gradient(micro)
    assert head_grad > 1e-5 and encoder_grad > 1e-7
    # the reference's ReLU head in the same state passes nothing: the collapse the dead-head check restarts
    dead_head, dead_encoder = _switched_off_head_gradient(dataclasses.replace(micro, head_activation="relu"))
    assert dead_head == 0.0 and dead_encoder == 0.0


@pytest.mark.parametrize("size", ["paper", "small", "micro"])
def test_every_size_keeps_the_reference_relu_and_key_names(size: str) -> None:
    cfg = trampformer.SIZES[size](64)
    assert cfg.head_activation == "relu"
    model = trampformer.build(cfg)
    assert [type(m) for m in model.head] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert sorted(k for k in model.state_dict() if k.startswith("head.")) == sorted(HEAD_KEYS)


def test_micro_head_has_the_same_weights_as_before_and_old_configs_read_back_as_relu() -> None:
    micro = trampformer.micro(16)
    assert sorted(k for k in trampformer.build(micro).state_dict() if k.startswith("head.")) == sorted(HEAD_KEYS)
    saved = micro.to_dict()
    del saved["head_activation"]  # a checkpoint written before the field existed was trained with ReLU
    assert TrampFormerConfig.from_dict(saved).head_activation == "relu"
    with pytest.raises(ValueError, match="head_activation"):
        dataclasses.replace(micro, head_activation="tanh").validate()


def test_constant_output_flags_only_a_single_repeated_value() -> None:
    assert constant_output(np.full(28, 1.468, dtype=np.float32), (0.0, 4.0))
    assert not constant_output(np.array([1.468, 1.468, 1.47], dtype=np.float32), (0.0, 4.0))
    assert not constant_output(np.array([2.0], dtype=np.float32), (0.0, 4.0))  # one clip says nothing


def test_the_run_config_picks_the_head_activation() -> None:
    assert model_config(resolve(["micro"], []), "smile").head_activation == "relu"
    assert model_config(resolve(["small"], []), "smile").head_activation == "relu"
    assert model_config(resolve(["micro"], ["model.head_activation=gelu"]), "smile").head_activation == "gelu"
    with pytest.raises(ConfigError, match="head_activation"):
        model_config(resolve(["micro"], ["model.family=qafe_net", "model.head_activation=relu"]), "smile")
    with pytest.raises(ConfigError, match="head_activation"):
        model_config(resolve(["micro"], ["model.head_activation=tanh"]), "smile")
