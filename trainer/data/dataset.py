"""A run's data: the layout read, split by subject, every clip's features cached; one entry per expression."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.heatmaps import HeatmapSpec
from common.protocols import PROTOCOLS
from trainer.builders import model_config
from trainer.config import RunConfig
from trainer.data.cache import CachedClip, SkippedClip, build_cache
from trainer.data.layouts import read_layout
from trainer.data.records import ClipRecord
from trainer.data.samples import reads_frames
from trainer.data.splits import split_by_subject

log = logging.getLogger(__name__)


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
        """The landmarker(s) the clips' observations came from, "+"-joined when they differ."""
        return "+".join(sorted({c.landmarker for part in (self.train, self.val, self.test) for c in part}))


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


def check_label_range(cfg: RunConfig) -> None:
    """A clinical protocol's layout must use that protocol's scale (common/protocols.py)."""
    protocol = PROTOCOLS.get(cfg.data.layout)
    if protocol is None:
        return
    scale = protocol.scale
    if (cfg.data.label_min, cfg.data.label_max) != (scale.min, scale.max):
        raise ConfigError(
            f"data.label_min/max = {cfg.data.label_min:g}/{cfg.data.label_max:g}, but {cfg.data.layout} scores on "
            f"{scale.name} {scale.label}: set them to {scale.min:g}/{scale.max:g} (or use the bundled layout config)"
        )


def refuse_missing_frames(cfg: RunConfig, records: list[ClipRecord], root: Path, mcfg: Any) -> None:
    """Refuse, before any clip is cached, a model that reads frames on clips that have none (trajectory and colour
    files only, e.g. a phantom set written with ``--contents trajectories``) and no source video to crop them from."""
    if not reads_frames(mcfg):
        return
    bare = [r for r in records if r.frames_dir is None and r.video is None]
    if bare:
        raise ConfigError(
            f"{root}: {len(bare)} of {len(records)} clips (e.g. {bare[0].clip_id}) have trajectory files but no "
            f"frames or source video, and {cfg.model.family} with these settings reads frames. Train the "
            "trajectory-only model (--set model.rgb=false), or write the set with frames "
            "(feqa phantom dataset --contents crops)"
        )


def load_dataset(cfg: RunConfig, heatmap: HeatmapSpec | None = None) -> LoadedData:
    """Read the layout, split by subject, cache features (and heatmaps when given); one entry per expression."""
    if not cfg.data.root:
        raise ConfigError("data.root is empty: point it at a PFED5, NeuroFace or UNBC-McMaster layout")
    check_label_range(cfg)
    root = Path(cfg.data.root)
    records = read_layout(cfg.data.layout, root, cfg.data)
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
    mcfg = model_config(cfg, wanted[0])  # the frame side and the streams are the same for every expression
    refuse_missing_frames(cfg, [r for r in records if r.expression in wanted], root, mcfg)
    model_size = mcfg.rgb.image_size
    result = build_cache([r for r in records if r.expression in wanted], cache_dir, cfg.data.load_size,
                         cfg.data.landmarks, heatmap=heatmap, model_size=model_size, fps=cfg.data.fps)  # fmt: skip
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


def load_eval_set(cfg: RunConfig, root: Path, heatmap: HeatmapSpec | None = None) -> dict[str, list[CachedClip]]:
    """Every usable clip of another dataset of the run's layout, by expression, all as test clips (an acceptance
    set: its subjects are not the run's, whatever its own split files say)."""
    records = read_layout(cfg.data.layout, Path(root), cfg.data)
    wanted = cfg.data.expressions or sorted({r.expression for r in records})
    if not wanted:
        raise ConfigError(f"no clips in {root}: the layout {cfg.data.layout!r} lists none")
    mcfg = model_config(cfg, wanted[0])
    refuse_missing_frames(cfg, [r for r in records if r.expression in wanted], Path(root), mcfg)
    model_size = mcfg.rgb.image_size
    result = build_cache([r for r in records if r.expression in wanted], Path(root) / ".feqa-cache",
                         cfg.data.load_size, cfg.data.landmarks, heatmap=heatmap, model_size=model_size,
                         fps=cfg.data.fps)  # fmt: skip
    if result.skipped:
        log.warning("%s: %d clips left out", root, len(result.skipped))
    out: dict[str, list[CachedClip]] = {}
    for clip in result.clips:
        out.setdefault(clip.record.expression, []).append(clip)
    return out
