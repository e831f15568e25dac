"""Where and how a run computes: device choice, seeding, CPU threads."""

from __future__ import annotations

import random

import numpy as np
import torch

from common.errors import ConfigError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
