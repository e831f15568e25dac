"""Loading official pretrained encoder checkpoints through explicit key maps, strictly.

A key map is an ordered list of (official template, our template) pairs plus the official keys we deliberately
drop (classifier heads, index buffers we rebuild). Templates use ``{i}`` for a run of digits and ``{p}`` for the
rest of a key. Every official key must either match a rule or a drop pattern; the mapped dict is then loaded with
``strict=True``, so a missing or unexpected key or a shape mismatch fails loudly instead of leaving layers random
(the TraMP reference silently skipped its T-Former weights that way).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from common.errors import ModelError


def _compile(template: str) -> re.Pattern[str]:
    out = ""
    for part in re.split(r"(\{i\}|\{p\})", template):
        out += {"{i}": r"(\d+)", "{p}": r"(.+)"}.get(part, re.escape(part))
    return re.compile(out)


def _fill(template: str, groups: tuple[str, ...]) -> str:
    it = iter(groups)
    return re.sub(r"\{i\}|\{p\}", lambda _: next(it), template)


@dataclasses.dataclass(frozen=True)
class KeyMap:
    """Ordered rename rules (first match wins) and drop patterns, from official names to ours."""

    name: str
    rules: tuple[tuple[str, str], ...]
    drop: tuple[str, ...] = ()
    strip_prefixes: tuple[str, ...] = ("module.",)

    def _official_key(self, key: str) -> str:
        for prefix in self.strip_prefixes:
            if key.startswith(prefix):
                return key[len(prefix) :]
        return key

    def to_ours(self, official: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename an official state dict; raise :class:`ModelError` for any key no rule explains."""
        out: dict[str, torch.Tensor] = {}
        unknown: list[str] = []
        for raw_key, value in official.items():
            key = self._official_key(raw_key)
            if any(_compile(d).fullmatch(key) for d in self.drop):
                continue
            for src, dst in self.rules:
                m = _compile(src).fullmatch(key)
                if m:
                    out[_fill(dst, m.groups())] = value
                    break
            else:
                unknown.append(raw_key)
        if unknown:
            raise ModelError(f"{self.name}: {len(unknown)} checkpoint keys match no rule, e.g. {unknown[:5]}")
        return out

    def to_official(self, ours: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Our state dict under the official names (the first rule that matches each key, read backwards)."""
        out: dict[str, torch.Tensor] = {}
        for key, value in ours.items():
            for src, dst in self.rules:
                m = _compile(dst).fullmatch(key)
                if m:
                    out[_fill(src, m.groups())] = value
                    break
            else:
                raise ModelError(f"{self.name}: our key {key!r} matches no rule")
        return out


_FORMER_TRANSFORMER_RULES: tuple[tuple[str, str], ...] = tuple(
    (f"{{p}}_former.{attr}.layers.{{i}}.{src}", f"{{p}}_former.transformer.layers.{{i}}.{dst}")
    for attr in ("spatial_transformer", "temporal_transformer")
    for src, dst in (
        ("0.fn.norm.{p}", "norm1.{p}"),
        ("0.fn.fn.to_qkv.{p}", "attn.qkv.{p}"),
        ("0.fn.fn.to_out.0.{p}", "attn.proj.{p}"),
        ("1.fn.norm.{p}", "norm2.{p}"),
        ("1.fn.fn.net.0.{p}", "mlp.fc1.{p}"),
        ("1.fn.fn.net.3.{p}", "mlp.fc2.{p}"),
    )
)

FORMER_DFER = KeyMap(
    name="Former-DFER",
    rules=(
        *_FORMER_TRANSFORMER_RULES,
        ("s_former.{p}", "s_former.{p}"),
        ("t_former.cls_token", "t_former.cls_token"),
        ("t_former.pos_embedding", "t_former.pos_embedding"),
    ),
    drop=("fc.{p}",),
)
"""Former-DFER (``GenerateModel``: s_former, t_former, fc) -> :class:`trainer.models.formerdfer.FormerDFER`."""

FORMER_DFER_RELEASED = dataclasses.replace(
    FORMER_DFER,
    name="Former-DFER (released DFEW file)",
    drop=("fc.{p}", "s_former.spatial_transformer.layers.1.{p}", "s_former.spatial_transformer.layers.2.{p}"),
)
"""The released DFEW file carries S-Former layers 1-2 that the published code never builds (Former-DFER #1)."""

SKATEFORMER = KeyMap(
    name="SkateFormer",
    rules=(
        ("stem.{p}", "stem.{p}"),
        ("joint_person_embedding", "joint_embedding"),
        ("stages.{i}.blocks.{i}.downsample.reduction.{p}", "stages.{i}.blocks.{i}.downsample.0.{p}"),
        ("stages.{i}.blocks.{i}.downsample.bn.{p}", "stages.{i}.blocks.{i}.downsample.1.{p}"),
        (
            "stages.{i}.blocks.{i}.transformer.attention.{i}.relative_position_bias_table",
            "stages.{i}.blocks.{i}.attention.{i}.bias_table",
        ),
        ("stages.{i}.blocks.{i}.transformer.{p}", "stages.{i}.blocks.{i}.{p}"),
    ),
    drop=(
        "head.{p}",
        "evaluator.{p}",
        "stages.{i}.blocks.{i}.transformer.attention.{i}.relative_position_index",
    ),
)
"""SkateFormer (upstream and TraMP's ``SkateFormer_256_rgb1x1``) -> :class:`trainer.models.skateformer.SkateFormer`."""

KEY_MAPS = {"former_dfer": FORMER_DFER, "former_dfer_released": FORMER_DFER_RELEASED, "skateformer": SKATEFORMER}


def unwrap_checkpoint(obj: object) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint file: under ``state_dict`` or ``model``, or the object itself."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                return dict(inner)
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
    raise ModelError("checkpoint holds no state dict (expected a tensor mapping, or one under 'state_dict'/'model')")


def load_strict(module: nn.Module, official: Mapping[str, torch.Tensor], keymap: KeyMap) -> None:
    """Rename ``official`` with ``keymap`` and load it into ``module`` with strict=True."""
    mapped = keymap.to_ours(official)
    try:
        module.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{keymap.name}: checkpoint does not fit the model: {exc}") from exc


def load_file(module: nn.Module, path: Path, keymap: KeyMap) -> None:
    """Load an official checkpoint file (never executes pickled code: ``weights_only=True``)."""
    if not Path(path).is_file():
        raise ModelError(f"no checkpoint at {path}")
    load_strict(module, unwrap_checkpoint(torch.load(path, map_location="cpu", weights_only=True)), keymap)
