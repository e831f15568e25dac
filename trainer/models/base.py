"""What every scoring model family offers the trainer and the exporter, and configs read back from plain dicts.

A family's model takes its named inputs positionally, in the order of ``INPUTS`` (the dataset yields them under
those names and the exported graphs use them as input names). The RGB stream's per-frame encoder is separate
(``encode_frames``) so a live scorer computes each frame's feature once; ``forward_features`` is the rest of the
model on cached features (the "window" graph).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar, Protocol, TypeVar

import torch

C = TypeVar("C")


class ScoringModel(Protocol):
    """The trainer's view of a model family (``torch.nn.Module`` subclasses implement it)."""

    FAMILY: ClassVar[str]  # the manifest's family name
    INPUTS: ClassVar[tuple[str, ...]]  # forward's inputs, in order
    WINDOW_INPUTS: ClassVar[tuple[str, ...]]  # forward_features' inputs, in order ("frame_features" first)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor: ...

    def forward_features(self, *inputs: torch.Tensor) -> torch.Tensor: ...


def config_from_dict(cls: type[C], raw: dict[str, Any]) -> C:
    """Rebuild a (nested) frozen config dataclass from ``dataclasses.asdict`` output (lists become tuples again).

    Unknown keys are an error; keys the dict lacks take the field's default, so a config saved before a field
    existed reads back with that field's default."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config fields {sorted(unknown)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        hint = hints[key]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            values[key] = config_from_dict(hint, value)
        elif isinstance(value, list):
            values[key] = tuple(value)
        else:
            values[key] = value
    out: C = cls(**values)
    return out

