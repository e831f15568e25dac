"""Layered experiment configs: ``configs/base.toml``, then override files, then ``--set section.key=value``.

The resolved config is a typed :class:`RunConfig`; unknown keys and wrong types are errors, never ignored. It is
saved as ``config.toml`` in the run directory.
"""

from __future__ import annotations

import dataclasses
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from common.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ModelSection:
    family: str = "tramp_former"  # tramp_former | qafe_net (trainer.models.families)
    size: str = "paper"  # paper | small | micro (the family's size factories)
    t_p: int = 128  # TraMP-Former's trajectory length
    t_p_rest: int = 64  # the "sit at rest" expression uses a shorter trajectory (paper)
    fusion: str = "tokens"  # TraMP-Former: tokens (ours) | reference (one token per side, the paper's code)
    bias_index: str = "auto"  # SkateFormer: auto (reference with official weights, else centred) | centred | reference
    rgb_size: int = 0  # Former-DFER frame side; 0 = the size's default (112 with the released upstream file)
    rgb_frames: int = 0  # RGB frames per clip; 0 = the size's default (80 = 5 subclips; QAFE on UNBC uses 144 = 9)
    rgb_norm: str = "auto"  # auto (what the loaded RGB weights were trained with) | imagenet | unit
    heatmap: str = "rgb"  # QAFE-Net heatmaps: rgb (paper: weights x RGB) | jet (the shipped script)
    position_on: str = "heatmap"  # QAFE-Net positional embedding: heatmap (shipped code) | rgb (paper text)
    # QAFE-Net heatmaps' Gaussian sigma in pixels of the 256 crop; 0 = the paper's 1 px (every size)
    heatmap_sigma: float = 0.0
    # QAFE-Net: subtract each window's mean over time from its heatmaps (heatmaps) and frame features (both)
    centre: str = "none"
    # QAFE-Net: subtract a reference frame (delta_from: each subclip's first, or the window's first) from the heatmaps
    # (heatmaps) and the RGB stream (both); rgb_stream = off replaces the RGB tokens by zeros (the heatmap stream alone)
    delta: str = "none"
    delta_from: str = "subclip"
    rgb_stream: str = "on"
    # index_t rule (common.features): "window" = position within the window; "reference" = the TraMP code's source
    # frame numbers, which tell the model the clip's length: only for fine-tuning official weights trained with it
    time_index: str = "window"
    # SkateFormer deformation channels' unit: "size" (the size factory's: pixels) | pixels | iod
    motion_norm: str = "size"
    # TraMP-Former's trajectory channels the stem reads: all (positions, colours and, where the size has them, the
    # deformation channels) | no_colour (the colours scaled to 0) | motion (only the deformation channels: the raw
    # positions, which carry the face's own shape, and the colours, which carry its skin, scaled to 0). Inside the
    # model, so the exported graph applies it to every live window alike
    trajectory_inputs: str = "all"
    # TraMP-Former's RGB stream: false = trajectory only (no frames read in training, no frame graph when exported)
    rgb: bool = True
    # TraMP-Former's head activation: auto (the size's: ReLU, the reference's, in every size) | relu | gelu
    head_activation: str = "auto"


@dataclasses.dataclass(frozen=True)
class DataSection:
    layout: str = "pfed5"  # pfed5 | neuroface | unbc
    root: str = ""
    expressions: list[str] = dataclasses.field(default_factory=list)  # empty = every expression in the data
    cache_dir: str = ""  # empty = <root>/.feqa-cache
    landmarks: str = "auto"  # auto | files (distributed trajectories) | video (landmark source videos with the tracker)
    load_size: int = 256
    val_fraction: float = 0.2
    test_fraction: float = 0.25  # only when the layout names no test subjects
    fold: int = 0  # NeuroFace fold 1-3 (0 = seeded subject split)
    replicate: int = 5  # the reference replicates the training list 5x per epoch
    fps: float = 25.0
    label_min: float = 0.0
    label_max: float = 4.0
    unbc_label: str = "vas"  # UNBC-McMaster: vas (sequence-level self-report 0-10) | pspi (frame-level, 0-16)
    unbc_window: int = 0  # pspi only: clip windows of this many frames (0 = whole sequences), labelled at their end


@dataclasses.dataclass(frozen=True)
class OptimSection:
    recipe: str = "adam"  # adam (shipped code) | sgd (paper)
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    step_size: int = 10
    gamma: float = 0.5
    epochs: int = 100
    batch_size: int = 4
    bmc_sigma: float = 1.0
    loss: str = "bmc"  # bmc (paper) | mse | bmc_mse (trainer.bmc.training_loss)


@dataclasses.dataclass(frozen=True)
class TrainSection:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision on a GPU only
    workers: int = 0
    threads: int = 0  # torch CPU threads (0 = torch default)
    reverse_p: float = 0.5
    flip_p: float = 0.5
    # QAFE-Net: one random colour change per training clip (channel order, gains, contrast), the same for every
    # frame and for both streams; the strength (0 = off; trainer.data.samples.Colour)
    colour_jitter: float = 0.0
    # QAFE-Net: one random zoom and shift per training clip, the same for every frame and both streams (0 = off)
    scale_jitter: float = 0.0
    # one random resampling of each training clip in time, log-speed U(-s, s), trajectory and frames alike (0 = off;
    # trainer.data.samples.time_warp): ramp and hold durations stop predicting severity in training
    time_warp: float = 0.0
    # QAFE-Net: weight of a training-only second loss, each frame's movement read from both streams' per-frame
    # features (trainer.models.qafe_motion; 0 = off, the paper's training); never in checkpoints or exports
    motion_aux: float = 0.0
    # which frames a training clip shows the RGB stream (and QAFE-Net's heatmaps): consecutive (the papers' rule: T_f
    # frames from a random start) | spread (over the whole clip, as scored, each moved at random; trainer.data.samples)
    frame_rule: str = "consecutive"
    eval_every: int = 1
    eval_clips: int = 1  # evaluation: 1 = the uniform rule; N > 1 = mean over N random clips (QAFE on UNBC: 10)
    max_minutes: float = 0.0  # stop early after this wall time (0 = no limit)
    # stop a run whose validation predictions are all equal for this many epochs in a row (a dead head; 0 = never)
    dead_epochs: int = 3
    dead_restarts: int = 1  # after such a stop, train again from scratch with seed + 1000 x restart, this many times
    # score calibration: validation (fitted on the validation clips) | cross_fit (on out-of-fold predictions of every
    # training and validation subject, calibration_folds more trainings per expression: trainer.crossfit)
    calibration: str = "validation"
    calibration_folds: int = 4


@dataclasses.dataclass(frozen=True)
class PretrainedSection:
    former_dfer: str = ""  # Former-DFER DFEW weights (QAFE/TraMP 224 px file, or the upstream 112 px release)
    former_dfer_map: str = "former_dfer"  # or former_dfer_released (the upstream file: 112 px, no normalisation)
    skateformer: str = ""  # TraMP's DFEW-pretrained SkateFormer_256_rgb1x1.pth
    slowonly: str = ""  # PoseC3D's pose_only.pth for QAFE-Net's heatmap encoder
    whole: str = ""  # a whole official model (TraMP-Former or QAFE-Net training-script checkpoint)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    data: DataSection = dataclasses.field(default_factory=DataSection)
    optim: OptimSection = dataclasses.field(default_factory=OptimSection)
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    pretrained: PretrainedSection = dataclasses.field(default_factory=PretrainedSection)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        unknown = set(raw) - set(_SECTIONS)
        if unknown:
            raise ConfigError(f"unknown config sections {sorted(unknown)}")
        sections: dict[str, Any] = {}
        for name, section_cls in _SECTIONS.items():
            defaults = section_cls()
            values: dict[str, Any] = {}
            for key, value in raw.get(name, {}).items():
                if not hasattr(defaults, key):
                    raise ConfigError(f"unknown config key {name}.{key}")
                values[key] = _coerce(name, key, getattr(defaults, key), value)
            sections[name] = section_cls(**values)
        return cls(**sections)


_SECTIONS: dict[str, Any] = {
    "model": ModelSection,
    "data": DataSection,
    "optim": OptimSection,
    "train": TrainSection,
    "pretrained": PretrainedSection,
}


def _coerce(section: str, key: str, default: Any, value: Any) -> Any:
    """Check a value against the type of its default; ints are accepted where floats are expected."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, bool) != isinstance(value, bool) or not isinstance(value, type(default)):
        raise ConfigError(f"{section}.{key} must be {type(default).__name__}, got {value!r}")
    return value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in over.items():
        if isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = value
    return out


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word is a string


def _read_toml(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if path.is_file():
        return tomllib.loads(path.read_text())
    bundled = resources.files("trainer.configs").joinpath(f"{name_or_path.removesuffix('.toml')}.toml")
    if bundled.is_file():
        return tomllib.loads(bundled.read_text())
    raise ConfigError(f"config {name_or_path!r} is neither a file nor a bundled config")


def resolve(layers: list[str], sets: list[str]) -> RunConfig:
    """base.toml, then each layer (a file or a bundled name such as ``small``), then ``section.key=value`` sets."""
    raw = _read_toml("base")
    for layer in layers:
        raw = _merge(raw, _read_toml(layer))
    for item in sets:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        raw = _merge(raw, {section: {name: _parse_value(value.strip())}})
    return RunConfig.from_dict(raw)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} to TOML")


def dump(cfg: RunConfig) -> str:
    """The resolved config as TOML (reads back to an equal :class:`RunConfig`)."""
    lines: list[str] = []
    for section, values in cfg.to_dict().items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
        lines.append("")
    return "\n".join(lines)


def load_resolved(path: Path) -> RunConfig:
    return RunConfig.from_dict(tomllib.loads(Path(path).read_text()))
