"""Scorer settings (``FEQA_SCORER_*``), read once in ``__main__`` and passed down. Models come from
``FEQA_MODELS_DIR`` (common settings): ``<models_dir>/<protocol>/<task>/<version>/``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import CommonSettings, ServiceSettings
from scorer.backends import BackendChoice
from scorer.batching import MicroBatcher


class ScorerSettings(ServiceSettings):
    """Everything the scorer worker needs: backend, models, batching, caches, windows, scale-out."""

    model_config = SettingsConfigDict(env_prefix="FEQA_SCORER_", extra="ignore", frozen=True)

    common: CommonSettings = Field(default_factory=CommonSettings)

    # backend
    backend: Literal["onnxruntime", "tensorrt"] = Field("onnxruntime", description="onnxruntime or tensorrt")
    device: Literal["cpu", "cuda"] = Field("cpu", description="cpu, or cuda (an error when CUDA is missing)")
    device_id: int = Field(0, ge=0, description="GPU index for cuda")
    intra_op_threads: int = Field(
        1, ge=0, description="ONNX Runtime threads per graph call (1 wins on a shared CPU; 0 = one per core)"
    )
    engine_cache_dir: Path = Field(Path(".feqa/engines"), description="TensorRT engines, keyed by graph, version, GPU")
    models_poll_s: float = Field(2.0, gt=0, description="how often the models directory is checked for new versions")

    # batching
    max_batch: int = Field(32, ge=1, description="rows per graph call at most (windows, or frames)")
    cpu_max_batch: int = Field(
        2, ge=1, description="on the CPU, rows per graph call at most (a bigger batch costs more per row there)"
    )
    max_wait_ms: float = Field(4.0, ge=0, description="how long a request waits for others to fill its batch")
    graph_threads: int = Field(
        0, ge=0, description="graph calls run at once on a pool of threads (0 = one per core of this process)"
    )

    # per-session caches (entries per session)
    obs_keep: int = Field(2048, ge=64, description="observations kept per session (read from obs:{sid})")
    crops_keep: int = Field(320, ge=16, description="face crops kept per session until their frame features exist")
    features_keep: int = Field(1024, ge=16, description="per-frame RGB features kept per session")

    # windows
    min_frames: int = Field(8, ge=2, description="windows with fewer usable face frames are withheld (short_window)")
    max_gap_s: float = Field(0.5, gt=0, description="a longer capture-time gap inside a window fails it (quality:gap)")
    hop_window_s: float = Field(4.0, gt=0, description="span of a hop window's kinematics when no model sets one")
    stale_ms: int = Field(3000, ge=0, description="hop windows older than this are dropped (task ends never are)")
    end_grace_s: float = Field(3.0, ge=0, description="an ended session's windows are still read this long")

    # scale-out and health
    consumer: str = Field("", description="consumer name in the scorer group; empty = host-pid")
    read_count: int = Field(64, ge=1, description="windows read per XREADGROUP")
    block_ms: int = Field(20, ge=1, description="how long one read waits for windows")
    lease_ttl_ms: int = Field(3000, ge=100, description="a session's owner must renew within this")
    reclaim_idle_ms: int = Field(1000, ge=0, description="pending windows idle this long are reclaimed on takeover")
    health_every_s: float = Field(2.0, gt=0, description="how often a Health entry is published")

    def graph_workers(self) -> int:
        """Threads of the micro-batcher's pool: ``graph_threads``, or the cores this process may use."""
        if self.graph_threads:
            return self.graph_threads
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)

    def batch_rows(self) -> int:
        """Rows per graph call at most: ``max_batch``, and on the CPU at most ``cpu_max_batch``. On the CPU a window
        costs more in a bigger batch (the partition attentions' logits of a batch of 8 small TraMP-Former windows
        outgrow the caches), so a round of due windows runs as several small calls on the free threads instead."""
        return min(self.max_batch, self.cpu_max_batch) if self.device == "cpu" else self.max_batch

    def batcher(self) -> MicroBatcher:
        """The micro-batcher these settings describe; on the CPU due requests are spread over the free threads."""
        return MicroBatcher(self.batch_rows(), self.max_wait_ms / 1000, workers=self.graph_workers(),
                            spread=self.device == "cpu")  # fmt: skip

    def backend_choice(self) -> BackendChoice:
        return BackendChoice(
            backend=self.backend,
            device=self.device,
            device_id=self.device_id,
            intra_op_threads=self.intra_op_threads,
            engine_cache_dir=self.engine_cache_dir,
            max_batch=self.max_batch,
        )
