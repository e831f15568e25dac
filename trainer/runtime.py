"""Where and how a run computes: device choice, seeding, CPU threads.

Reproducibility: a run is a function of its config and data. Every random draw is seeded from ``train.seed``
(:func:`seed_everything`; samples draw from ``(seed, epoch, index)``, the loader's order from a seeded generator),
torch is asked for deterministic kernels (on a GPU too: cuDNN autotuning off, cuBLAS given a fixed workspace), and
nothing depends on Python's string hashing (no set or dict of strings is iterated into an order that matters). The
one thing that would make a run depend on the machine, the wall-clock budget ``train.max_minutes``, is off by
default; a run it stops is logged and recorded as ``stopped_by_time_budget`` (not reproducible on a busier machine).
``tests/integration/test_trainer_reproducible.py`` trains twice in two processes with different ``PYTHONHASHSEED``
and compares the weights bit for bit.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from common.errors import ConfigError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    deterministic_kernels()


def deterministic_kernels() -> None:
    """Ask torch for deterministic kernels (a warning, not an error, where an op has none: the run still goes)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS reads it when CUDA first initialises
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when present; an explicit CUDA device without CUDA is an error, never a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name} asked for but CUDA is not available")
    return dev


def set_threads(threads: int) -> None:
    """Pin torch's CPU threads (0 = leave torch's default)."""
    if threads:
        torch.set_num_threads(threads)
