"""Explicit key maps from official checkpoints' parameter names to ours (loaded strictly, never ``strict=False``).

A key map is an ordered list of (official template, our template) pairs plus the official keys we deliberately
drop (classifier heads, index buffers we rebuild). Templates use ``{i}`` for a run of digits and ``{p}`` for the
rest of a key. Every official key must either match a rule or a drop pattern; the mapped dict is then loaded with
``strict=True`` (:func:`trainer.pretrained.load_strict`), so a missing or unexpected key or a shape mismatch fails
loudly instead of leaving layers random (the TraMP reference silently skipped its T-Former weights that way).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import torch

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
    fresh: tuple[str, ...] = ()  # our keys the official file cannot fill (kept at init), e.g. a stem with new channels

    def prefixed(self, official: str, ours: str) -> KeyMap:
        """The same rules for a sub-module: official keys under ``official``, ours under ``ours``."""
        return KeyMap(
            name=self.name,
            rules=tuple((official + src, ours + dst) for src, dst in self.rules),
            drop=tuple(official + d for d in self.drop),
            strip_prefixes=self.strip_prefixes,
            fresh=tuple(ours + f for f in self.fresh),
        )

    def is_fresh(self, key: str) -> bool:
        return any(_compile(f).fullmatch(key) for f in self.fresh)

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


def combine(name: str, *maps: KeyMap, rules: tuple[tuple[str, str], ...] = (), drop: tuple[str, ...] = ()) -> KeyMap:
    """One map for a whole model from its parts' (prefixed) maps plus extra rules and drops of its own."""
    return KeyMap(
        name=name,
        rules=rules + tuple(r for m in maps for r in m.rules),
        drop=drop + tuple(d for m in maps for d in m.drop),
        fresh=tuple(f for m in maps for f in m.fresh),
    )


_HEAD_RULES = (("layer1.{p}", "0.{p}"), ("layer2.{p}", "2.{p}"), ("layer3.{p}", "4.{p}"))  # MLP head Linear layers

TRAMP_FORMER = combine(
    "TraMP-Former (Quality_Model)",
    SKATEFORMER.prefixed("encoder.", "traj_encoder."),
    FORMER_DFER.prefixed("rgb_encoder.", "rgb_encoder."),
    rules=(
        ("rgb_transform.{p}", "rgb_proj.{p}"),
        ("fusion.model.{i}.norm_q.{p}", "fusion.{i}.norm_q.{p}"),
        ("fusion.model.{i}.norm_v.{p}", "fusion.{i}.norm_kv.{p}"),
        ("fusion.model.{i}.attn.q_map.{p}", "fusion.{i}.attn.q.{p}"),
        ("fusion.model.{i}.attn.k_map.{p}", "fusion.{i}.attn.k.{p}"),
        ("fusion.model.{i}.attn.v_map.{p}", "fusion.{i}.attn.v.{p}"),
        ("fusion.model.{i}.attn.proj.{p}", "fusion.{i}.attn.proj.{p}"),
        ("fusion.model.{i}.norm2.{p}", "fusion.{i}.norm_2.{p}"),
        ("fusion.model.{i}.mlp.fc1.{p}", "fusion.{i}.ffn.0.{p}"),
        ("fusion.model.{i}.mlp.fc2.{p}", "fusion.{i}.ffn.2.{p}"),
        *((f"evaluator.{src}", f"head.{dst}") for src, dst in _HEAD_RULES),
    ),
)
"""A whole TraMP-Former as its training script saves it (``model``: SkateFormer ``encoder``, Former-DFER
``rgb_encoder``, ``fusion``, ``evaluator``, ``rgb_transform``) -> :class:`trainer.models.trampformer.TrampFormer` with
``fusion = "reference"`` and the reference bias index."""

SLOWONLY = KeyMap(
    name="SlowOnly (QAFE-Net)",
    rules=(("{p}", "{p}"),),
)
"""QAFE-Net's SlowOnly (``ResNet3dSlowOnly.restnet3d``: mmcv ConvModule names) -> :class:`trainer.models.slowonly.
SlowOnly`; the names are kept, so the map only checks that every key is there and fits."""

SLOWONLY_POSEC3D = KeyMap(
    name="SlowOnly (PoseC3D pose_only.pth)",
    rules=(("backbone.{p}", "{p}"),),
    drop=("cls_head.{p}", "backbone.conv1.conv.weight"),
    fresh=("conv1.conv.weight",),
)
"""PoseC3D's NTU-60 keypoint SlowOnly (``backbone.*`` + ``cls_head.fc_cls``): its stem reads 17 keypoint channels, our
heatmaps have 3, so the stem conv stays at its initialisation (as QAFE-Net does) and everything else must fit."""

QAFE_PARTS = ("model", "SlowOnly", "decoder", "evaluator")
"""QAFE-Net's script saves one state dict per sub-network under these keys (merged by
:func:`trainer.pretrained.unwrap_checkpoint` as ``<part>.<key>``)."""

QAFE_NET = combine(
    "QAFE-Net (main_PFED5.py checkpoint)",
    FORMER_DFER.prefixed("model.", "rgb_encoder."),
    SLOWONLY.prefixed("SlowOnly.restnet3d.", "heatmap_encoder."),
    rules=(
        ("decoder.pos_embed", "fusion.pos_embed"),
        ("decoder.model.{i}.norm_q.{p}", "fusion.blocks.{i}.norm_q.{p}"),
        ("decoder.model.{i}.norm_v.{p}", "fusion.blocks.{i}.norm_kv.{p}"),
        ("decoder.model.{i}.attn.q_map.{p}", "fusion.blocks.{i}.attn.q.{p}"),
        ("decoder.model.{i}.attn.k_map.{p}", "fusion.blocks.{i}.attn.k.{p}"),
        ("decoder.model.{i}.attn.v_map.{p}", "fusion.blocks.{i}.attn.v.{p}"),
        ("decoder.model.{i}.attn.proj.{p}", "fusion.blocks.{i}.attn.proj.{p}"),
        ("decoder.model.{i}.norm2.{p}", "fusion.blocks.{i}.norm_2.{p}"),
        ("decoder.model.{i}.mlp.{p}", "fusion.blocks.{i}.mlp.{p}"),
        ("decoder.conv.{p}", "fusion.token_mix.{p}"),
        *((f"evaluator.evaluator.{src}", f"head.{dst}") for src, dst in _HEAD_RULES),
    ),
    drop=("decoder.norm.{p}",),  # a LayerNorm the decoder defines but never calls
)
"""A whole QAFE-Net as ``main_PFED5.py`` saves it -> :class:`trainer.models.qafenet.QafeNet` (``position_on =
"heatmap"``, the script's order)."""

KEY_MAPS = {
    "former_dfer": FORMER_DFER,
    "former_dfer_released": FORMER_DFER_RELEASED,
    "skateformer": SKATEFORMER,
    "slowonly_posec3d": SLOWONLY_POSEC3D,
    "tramp_former": TRAMP_FORMER,
    "qafe_net": QAFE_NET,
}
