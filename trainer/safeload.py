"""Reading checkpoint files that other people's training scripts wrote, without running any code from them.

``torch.load(weights_only=False)`` unpickles arbitrary objects, so a downloaded checkpoint can execute anything. We
always load with ``weights_only=True`` (torch's restricted unpickler: tensors, containers, numbers and strings) and
allow, in addition, only the few globals the reference training scripts put into their files:

* the progress recorder (``RecorderMeter``) that Former-DFER and QAFE-Net define in their ``__main__`` script and
  TraMP-Former imports from ``utils.vis_tools``: rebuilt as :class:`ReferenceRecorder`, a plain attribute holder that
  runs no code of its own;
* numpy scalars and arrays (the best-epoch figure ``best_pho`` / ``best_acc`` is a numpy float in TraMP, the recorder
  holds numpy arrays), under both the numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) module names.

Anything else (a ``builtins.eval``, an ``os.system``, a class we do not know) stops the load before it is built, and
every way a file can fail to load (missing, truncated, not a checkpoint, a forbidden global) surfaces as
:class:`~common.errors.ModelError` naming the file and what to do.
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import ModelError

RECORDER_NAMES = ("__main__.RecorderMeter", "utils.vis_tools.RecorderMeter")
"""Where the reference scripts' recorder class lives when their files are written."""


class ReferenceRecorder:
    """Stands in for a reference script's ``RecorderMeter``: keeps the pickled attributes (numpy arrays of losses and
    accuracies per epoch) and nothing else; it has no methods that run on load."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"recorder state must be a dict, got {type(state).__name__}")
        self.__dict__.update(state)


Allowed = list[Callable[..., Any] | tuple[Callable[..., Any], str]]


def _numpy_globals() -> Allowed:
    core = importlib.import_module("numpy._core.multiarray")  # numpy 2's home; numpy 1.x files say numpy.core
    out: Allowed = [(np.dtype, "numpy.dtype"), (np.ndarray, "numpy.ndarray")]
    for prefix in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out += [(core.scalar, f"{prefix}.scalar"), (core._reconstruct, f"{prefix}._reconstruct")]
    # numpy >= 1.25 may name a dtype by its class (numpy.dtypes.Float64DType) instead of numpy.dtype
    for name in ("Float16DType", "Float32DType", "Float64DType", "Int32DType", "Int64DType", "BoolDType"):
        cls = getattr(np.dtypes, name, None)
        if cls is not None:
            out.append((cls, f"numpy.dtypes.{name}"))
    return out


def allowed_globals() -> Allowed:
    """Every global, beyond torch's own restricted set, a reference checkpoint may name."""
    recorders: Allowed = [(ReferenceRecorder, name) for name in RECORDER_NAMES]
    return recorders + _numpy_globals()


def read_untrusted(path: Path) -> Any:
    """The object in a checkpoint file from elsewhere, loaded with the restricted unpickler plus the allow-list."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"no checkpoint at {path}")
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelError(
            f"{path}: refused to load: it holds objects outside the allow-list of tensors, numbers, numpy values and "
            f"the reference scripts' recorder ({exc}). Only checkpoints written by the reference training scripts "
            "load here; if you wrote this file yourself and trust it, re-save it as a plain dict of tensors."
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError, AttributeError, OSError) as exc:
        raise ModelError(f"{path}: not a readable PyTorch checkpoint (truncated or another format?): {exc}") from exc


def read_own(path: Path) -> Any:
    """A file this trainer wrote (tensors, numbers, strings, lists, dicts): ``weights_only=True``, no extras."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelError(f"{path}: holds objects a feqa checkpoint never contains ({exc})") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError, AttributeError, OSError) as exc:
        raise ModelError(f"{path}: not a readable checkpoint (truncated or another format?): {exc}") from exc
