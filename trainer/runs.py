"""What a run directory holds and how its pieces are rebuilt: data per expression, models, checkpoints, devices."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import ConfigError, ModelError
from common.features import TIME_INDEX_RULES
from trainer.config import RunConfig
from trainer.data.cache import CachedClip, SkippedClip, build_cache
from trainer.data.layouts import read_layout
from trainer.data.samples import SampleSpec
from trainer.data.splits import split_by_subject
from trainer.models.trampformer import SIZES, TrampFormer, TrampFormerConfig
from trainer.pretrained import KEY_MAPS, load_file

log = logging.getLogger(__name__)

BEST = "best.pt"
LAST = "last.pt"


@dataclasses.dataclass(frozen=True)
class ExpressionData:
    expression: str
    train: list[CachedClip]
    val: list[CachedClip]
    test: list[CachedClip]

    def data_hash(self) -> str:
        h = hashlib.sha256()
        for part in (self.train, self.val, self.test):
            for c in part:
                h.update(f"{c.record.clip_id}:{c.record.label};".encode())
            h.update(b"|")
        return h.hexdigest()[:16]

    def landmarker(self) -> str:
        """The landmarker identity of every clip ("" for dataset files; several joined by "+" when mixed)."""
        names = sorted({c.landmarker for part in (self.train, self.val, self.test) for c in part})
        return "+".join(n or "files" for n in names) if len(names) > 1 else (names[0] if names else "")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name} asked for but CUDA is not available")
    return dev


@dataclasses.dataclass(frozen=True)
class LoadedData:
    """Every expression's clips, and what building the feature cache did."""

    expressions: dict[str, ExpressionData]
    skipped: list[SkippedClip]
    computed: int

    def report(self) -> dict[str, Any]:
        """What ``data_report.json`` in a run dir holds: clip counts per expression and part, clips left out."""
        return {
            "expressions": {
                e: {"train": len(d.train), "val": len(d.val), "test": len(d.test)} for e, d in self.expressions.items()
            },
            "left_out": [{"clip": s.clip_id, "reason": s.reason} for s in self.skipped],
        }


def load_data(cfg: RunConfig) -> dict[str, ExpressionData]:
    """Read the layout, split by subject, cache features; one entry per expression asked for (or present)."""
    return load_dataset(cfg).expressions


def load_dataset(cfg: RunConfig) -> LoadedData:
    """:func:`load_data` plus the clips left out and how many clips' features were computed now."""
    if not cfg.data.root:
        raise ConfigError("data.root is empty: point it at a PFED5 or NeuroFace layout")
    root = Path(cfg.data.root)
    records = read_layout(cfg.data.layout, root)
    split = split_by_subject(
        records,
        val_fraction=cfg.data.val_fraction,
        test_fraction=cfg.data.test_fraction,
        seed=cfg.train.seed,
        fold=cfg.data.fold,
    )
    cache_dir = Path(cfg.data.cache_dir) if cfg.data.cache_dir else root / ".feqa-cache"
    present = sorted({r.expression for r in records})
    wanted = cfg.data.expressions or present
    missing = [e for e in wanted if e not in present]
    if missing:
        raise ConfigError(f"expressions {missing} not in the data (present: {present})")
    # one pass over every clip wanted: one progress bar, and landmarked videos batch across expressions
    if not wanted:
        raise ConfigError(f"no clips in {root}: the layout {cfg.data.layout!r} lists none")
    model_size = model_config(cfg, wanted[0]).rgb.image_size  # the frame side is the same for every expression
    result = build_cache([r for r in records if r.expression in wanted], cache_dir, cfg.data.load_size,
                         cfg.data.landmarks, model_size=model_size, fps=cfg.data.fps)  # fmt: skip
    by_id = {c.record.clip_id: c for c in result.clips}
    if result.skipped:
        log.warning("%d of %d clips left out (see the warnings above); %d usable", len(result.skipped),
                    len(result.skipped) + len(result.clips), len(result.clips))  # fmt: skip
    out: dict[str, ExpressionData] = {}
    for expr in wanted:
        cached = [
            [by_id[r.clip_id] for r in getattr(split, p) if r.expression == expr and r.clip_id in by_id]
            for p in ("train", "val", "test")
        ]
        if not cached[0]:
            raise ConfigError(
                f"{expr}: no usable training clips ({len(result.skipped)} clips left out, see the warnings)"
            )
        out[expr] = ExpressionData(expr, *cached)
        log.info("%s: %d train / %d val / %d test clips", expr, *(len(c) for c in cached))
    return LoadedData(out, result.skipped, result.computed)


def load_eval_set(cfg: RunConfig, root: Path) -> dict[str, list[CachedClip]]:
    """Every usable clip of another dataset of the run's layout, by expression, all as test clips (an acceptance
    set: its subjects are not the run's, whatever its own split files say)."""
    records = read_layout(cfg.data.layout, Path(root))
    result = build_cache(records, Path(root) / ".feqa-cache", cfg.data.load_size, cfg.data.landmarks)
    if result.skipped:
        log.warning("%s: %d clips left out", root, len(result.skipped))
    out: dict[str, list[CachedClip]] = {}
    for clip in result.clips:
        out.setdefault(clip.record.expression, []).append(clip)
    return out


def model_config(cfg: RunConfig, expression: str) -> TrampFormerConfig:
    if cfg.model.size not in SIZES:
        raise ConfigError(f"model.size {cfg.model.size!r} unknown; expected one of {sorted(SIZES)}")
    t_p = cfg.model.t_p_rest if expression == "rest" else cfg.model.t_p
    return SIZES[cfg.model.size](t_p)


def build_model(cfg: RunConfig, expression: str) -> TrampFormer:
    model = TrampFormer(model_config(cfg, expression))
    if cfg.pretrained.former_dfer:
        load_file(model.rgb_encoder, Path(cfg.pretrained.former_dfer), KEY_MAPS[cfg.pretrained.former_dfer_map])
    if cfg.pretrained.skateformer:
        load_file(model.traj_encoder, Path(cfg.pretrained.skateformer), KEY_MAPS["skateformer"])
    return model


def sample_spec(cfg: RunConfig, mcfg: TrampFormerConfig, train: bool) -> SampleSpec:
    if cfg.data.load_size < mcfg.rgb.image_size:
        raise ConfigError(f"data.load_size {cfg.data.load_size} is smaller than the model's {mcfg.rgb.image_size}")
    if cfg.model.time_index not in TIME_INDEX_RULES:
        raise ConfigError(f"model.time_index must be one of {TIME_INDEX_RULES}, got {cfg.model.time_index!r}")
    return SampleSpec(
        t_p=mcfg.skate.t_p,
        rgb_frames=mcfg.rgb_frames,
        image_size=mcfg.rgb.image_size,
        train=train,
        reverse_p=cfg.train.reverse_p,
        flip_p=cfg.train.flip_p,
        fps=cfg.data.fps,
        time_index=cfg.model.time_index,
    )


def load_checkpoint(path: Path) -> tuple[TrampFormer, dict[str, Any]]:
    """A model rebuilt from its checkpoint alone (the config travels inside), in eval mode."""
    if not path.is_file():
        raise ModelError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = TrampFormer(TrampFormerConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"], strict=True)
    return model.eval(), ckpt
