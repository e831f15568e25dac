"""The model families the trainer builds, exports and the scorer serves: one entry per manifest ``family``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from common.errors import ConfigError, ModelError
from trainer.models import qafenet, trampformer


@dataclasses.dataclass(frozen=True)
class Family:
    """How to make one family's config (by size name, or back from a dict) and its model."""

    name: str
    sizes: Mapping[str, Callable[[int], Any]]  # size name -> factory(t_p)
    from_dict: Callable[[dict[str, Any]], Any]
    build: Callable[[Any], nn.Module]
    uses_trajectory: bool  # takes the 63-point trajectory + index_t (T_p matters)
    uses_heatmaps: bool  # takes landmark heatmap images


FAMILIES: dict[str, Family] = {
    "tramp_former": Family(
        "tramp_former",
        trampformer.SIZES,
        trampformer.TrampFormerConfig.from_dict,
        trampformer.build,
        uses_trajectory=True,
        uses_heatmaps=False,
    ),
    "qafe_net": Family(
        "qafe_net",
        qafenet.SIZES,
        qafenet.QafeNetConfig.from_dict,
        qafenet.QafeNet,
        uses_trajectory=False,
        uses_heatmaps=True,
    ),
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"unknown model family {name!r}; expected one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def model_from_config(family: str, config: dict[str, Any]) -> nn.Module:
    """A freshly initialised model of ``family`` from its saved config dict (checkpoints, manifests)."""
    fam = FAMILIES.get(family)
    if fam is None:
        raise ModelError(f"checkpoint names an unknown model family {family!r} (known: {sorted(FAMILIES)})")
    try:
        return fam.build(fam.from_dict(config))
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(f"{family}: the saved model config does not build a model: {exc}") from exc
