"""ONNX Runtime sessions with the providers chosen by settings, and a loud failure when they are not active."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

from common.errors import ConfigError, ModelError

log = logging.getLogger(__name__)


def open_session(path: Path, providers: Sequence[str], intra_op_threads: int = 0,
                 model: bytes | None = None) -> ort.InferenceSession:  # fmt: skip
    """Open ``path`` on exactly ``providers``; raise when one is unavailable or silently dropped (no CPU fallback
    behind the operator's back: a CUDA request that ends up on CPU is an error). ``model``: the serialised graph to
    run instead of the file's own (one derived from it in memory; ``path`` then names it in messages and logs)."""
    if not providers:
        raise ConfigError("no ONNX Runtime providers configured; set FEQA_TRACKER_PROVIDERS")
    available = set(ort.get_available_providers())
    missing = [p for p in providers if p not in available]
    if missing:
        raise ConfigError(
            f"ONNX Runtime providers {missing} requested but this onnxruntime build offers {sorted(available)}; "
            "install onnxruntime-gpu (extra 'gpu') for CUDA or change FEQA_TRACKER_PROVIDERS"
        )
    options = ort.SessionOptions()
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
    # Idle pool threads sleep instead of spinning: the tracker shares its cores with the other services. Measured on
    # 2 busy cores, MediaPipe on a 320x240 phantom frame: 35 ms of CPU with ONNX Runtime's spinning pool, 10 ms
    # without (either pool size), and the spinning slowed every process beside it.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        source = str(path) if model is None else model
        session = ort.InferenceSession(source, sess_options=options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt or unsupported graphs
        raise ModelError(f"cannot load ONNX model {path}: {exc}") from exc
    active = session.get_providers()
    dropped = [p for p in providers if p not in active]
    if dropped:
        raise ConfigError(
            f"{path.name}: providers {dropped} were requested but are not active (active: {active}); "
            "check the CUDA/cuDNN installation instead of running silently on CPU"
        )
    log.info("loaded %s on %s", path.name, ",".join(active))
    return session


def batch_is_dynamic(session: ort.InferenceSession) -> bool:
    """True when the model's first input has a free batch dimension."""
    dim = session.get_inputs()[0].shape[0]
    return not isinstance(dim, int) or dim <= 0
