"""Turning a run config into a model: the family's size, the automatic fidelity choices, and official weights.

Choices made here when the config says ``auto`` (all recorded in the model config, so they travel in the checkpoint
and the manifest):

* ``model.bias_index``: ``reference`` when official SkateFormer or whole TraMP-Former weights are loaded (those
  tables were learned under the reference's lookup, :mod:`trainer.models.skateformer`), ``centred`` otherwise.
* ``model.rgb_size`` 0 and ``model.rgb_norm``: the upstream Former-DFER release (``former_dfer_map =
  former_dfer_released``) was trained on 112-px frames in [0, 1] without normalisation, so it gets 112 and the
  identity mean/std; every other case keeps the size's frame side and ImageNet's mean/std.

Official weights load strictly through :mod:`trainer.keymaps` (a whole model, or one encoder at a time).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from torch import nn

from common.errors import ConfigError
from common.heatmaps import HeatmapSpec, with_sigma
from trainer.config import RunConfig
from trainer.keymaps import KEY_MAPS, QAFE_PARTS
from trainer.models import skateformer
from trainer.models.families import get_family
from trainer.models.formerdfer import IMAGENET_MEAN, IMAGENET_STD, UNIT, FormerDFERConfig
from trainer.pretrained import load_file

log = logging.getLogger(__name__)

RGB_NORMS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "unit": UNIT}
RELEASED_RGB = "former_dfer_released"


def _rgb(cfg: RunConfig, rgb: FormerDFERConfig) -> FormerDFERConfig:
    released = bool(cfg.pretrained.former_dfer) and cfg.pretrained.former_dfer_map == RELEASED_RGB
    size = cfg.model.rgb_size or (112 if released else rgb.image_size)
    norm = cfg.model.rgb_norm if cfg.model.rgb_norm != "auto" else ("unit" if released else "imagenet")
    if norm not in RGB_NORMS:
        raise ConfigError(f"model.rgb_norm must be auto or one of {sorted(RGB_NORMS)}, got {cfg.model.rgb_norm!r}")
    if released and (size != 112 or norm != "unit"):
        log.warning("the released Former-DFER weights were trained at 112 px on unnormalised frames; this run uses "
                    "%d px with %s normalisation", size, norm)  # fmt: skip
    mean, std = RGB_NORMS[norm]
    return dataclasses.replace(rgb, image_size=size, mean=mean, std=std)


def _bias_index(cfg: RunConfig) -> str:
    official = bool(cfg.pretrained.skateformer or cfg.pretrained.whole)
    choice = cfg.model.bias_index
    if choice == "auto":
        return "reference" if official else "centred"
    if choice == "centred" and official:
        log.warning("model.bias_index = centred with official SkateFormer weights: their bias tables were learned "
                    "under the reference lookup and will mean something else")  # fmt: skip
    return choice


TRAJECTORY_INPUTS = ("all", "no_colour", "motion")
"""``model.trajectory_inputs``: which of the trajectory's raw channels (x, y, r, g, b) the stem keeps."""


def _trajectory_inputs(skate: skateformer.SkateFormerConfig, choice: str) -> skateformer.SkateFormerConfig:
    """The SkateFormer config with the raw channels ``choice`` leaves out scaled to 0 (the stem's width and the
    input tensor stay as they are, so a model trained either way reads the same live input)."""
    if choice not in TRAJECTORY_INPUTS:
        raise ConfigError(f"model.trajectory_inputs must be one of {TRAJECTORY_INPUTS}, got {choice!r}")
    if choice == "all":
        return skate
    if choice == "motion" and not skate.motion_channels:
        raise ConfigError("model.trajectory_inputs = motion needs the deformation channels, which this size lacks")
    kept = 2 if choice == "no_colour" else 0
    scale = tuple(f if c < kept else 0.0 for c, f in enumerate(skate.input_scale))
    return dataclasses.replace(skate, input_scale=scale)


def model_config(cfg: RunConfig, expression: str) -> Any:
    """The family's config for one expression's model, with the automatic choices applied."""
    fam = get_family(cfg.model.family)
    if cfg.model.size not in fam.sizes:
        raise ConfigError(f"model.size {cfg.model.size!r} unknown for {fam.name}; expected one of {sorted(fam.sizes)}")
    t_p = cfg.model.t_p_rest if expression == "rest" else cfg.model.t_p
    mcfg = fam.sizes[cfg.model.size](t_p)
    changes: dict[str, Any] = {"rgb": _rgb(cfg, mcfg.rgb)}
    if cfg.model.rgb_frames:
        changes["rgb_frames"] = cfg.model.rgb_frames
    if fam.name == "tramp_former":
        if (cfg.model.delta, cfg.model.delta_from, cfg.model.rgb_stream) != ("none", "subclip", "on"):
            raise ConfigError("model.delta, model.delta_from and model.rgb_stream are QAFE-Net's (TraMP-Former: "
                              "model.trajectory_inputs and model.rgb)")  # fmt: skip
        skate = dataclasses.replace(mcfg.skate, bias_index=_bias_index(cfg))
        if cfg.model.motion_norm != "size":
            norm = cfg.model.motion_norm
            skate = dataclasses.replace(skate, motion_norm=norm, motion_scale=skateformer.MOTION_SCALES.get(norm, 1.0))
        changes["skate"] = _trajectory_inputs(skate, cfg.model.trajectory_inputs)
        changes["fusion"] = cfg.model.fusion
        changes["time_index"] = cfg.model.time_index
        changes["use_rgb"] = cfg.model.rgb
        if cfg.model.head_activation != "auto":
            changes["head_activation"] = cfg.model.head_activation
    elif cfg.model.head_activation != "auto":
        raise ConfigError(f"model.head_activation is TraMP-Former's; {fam.name} has its own head (leave it 'auto')")
    elif not cfg.model.rgb:
        raise ConfigError(f"model.rgb = false leaves TraMP-Former's RGB stream out; {fam.name} has no other stream")
    elif cfg.model.time_index != "window":
        raise ConfigError(f"model.time_index applies to trajectory inputs; {fam.name} takes none (leave it 'window')")
    elif cfg.model.trajectory_inputs != "all":
        raise ConfigError(f"model.trajectory_inputs is TraMP-Former's; {fam.name} reads no trajectory (leave it 'all')")
    else:
        heatmap = dataclasses.replace(mcfg.heatmap, variant=cfg.model.heatmap, skip_first=cfg.model.heatmap == "jet")
        if cfg.model.heatmap_sigma:
            heatmap = with_sigma(heatmap, cfg.model.heatmap_sigma)
        changes["heatmap"] = heatmap
        changes["position_on"] = cfg.model.position_on
        changes["centre"] = cfg.model.centre
        changes["delta"] = cfg.model.delta
        changes["delta_from"] = cfg.model.delta_from
        changes["rgb_stream"] = cfg.model.rgb_stream
    try:
        out = dataclasses.replace(mcfg, **changes)
        out.validate()
    except ValueError as exc:
        raise ConfigError(f"model config for {expression}: {exc}") from exc
    return out


def build_model(cfg: RunConfig, expression: str) -> nn.Module:
    """A new model for one expression, with any official weights the config names loaded strictly."""
    fam = get_family(cfg.model.family)
    model = fam.build(model_config(cfg, expression))
    p = cfg.pretrained
    if not cfg.model.rgb and (p.whole or p.former_dfer):
        raise ConfigError("model.rgb = false trains without the RGB stream: pretrained.whole and "
                          "pretrained.former_dfer name RGB weights it has no place for")  # fmt: skip
    if p.whole:
        if fam.name == "tramp_former" and cfg.model.fusion != "reference":
            raise ConfigError(
                "a whole TraMP-Former checkpoint was trained with the reference fusion (one token per side): set "
                "model.fusion = reference (the bundled config `-c reference` does)"
            )
        load_file(model, Path(p.whole), KEY_MAPS[fam.name], QAFE_PARTS if fam.name == "qafe_net" else ())
        return model
    if p.former_dfer:
        if p.former_dfer_map not in ("former_dfer", RELEASED_RGB):
            raise ConfigError(f"pretrained.former_dfer_map: former_dfer or {RELEASED_RGB}, not {p.former_dfer_map!r}")
        load_file(_part(model, "rgb_encoder"), Path(p.former_dfer), KEY_MAPS[p.former_dfer_map])
    if p.skateformer:
        if fam.name != "tramp_former":
            raise ConfigError("pretrained.skateformer is TraMP-Former's trajectory encoder; this run trains qafe_net")
        load_file(_part(model, "traj_encoder"), Path(p.skateformer), KEY_MAPS["skateformer"])
    if p.slowonly:
        if fam.name != "qafe_net":
            raise ConfigError("pretrained.slowonly is QAFE-Net's heatmap encoder; this run trains tramp_former")
        load_file(_part(model, "heatmap_encoder"), Path(p.slowonly), KEY_MAPS["slowonly_posec3d"])
    return model


def _part(model: nn.Module, name: str) -> nn.Module:
    part = getattr(model, name)
    if not isinstance(part, nn.Module):
        raise ConfigError(f"{type(model).__name__} has no sub-network {name}")
    return part


def heatmap_spec(mcfg: Any) -> HeatmapSpec | None:
    """The heatmaps a model config needs drawn, or None."""
    spec = getattr(mcfg, "heatmap", None)
    return spec if isinstance(spec, HeatmapSpec) else None
