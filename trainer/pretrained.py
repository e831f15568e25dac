"""Loading official checkpoints (files the reference scripts wrote) into our modules: safely, then strictly.

Files are read by :func:`trainer.safeload.read_untrusted` (restricted unpickler plus a short allow-list; nothing in
the file runs), the state dict is found inside the payload, renamed by an explicit :class:`~trainer.keymaps.KeyMap`
and loaded so that every one of our keys is filled except those the map names as ``fresh`` (a stem whose input
channels differ from the pre-training data), and every official key is used or deliberately dropped. Any failure
is a :class:`~common.errors.ModelError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from common.errors import ModelError
from trainer.keymaps import KeyMap
from trainer.safeload import read_untrusted


def unwrap_checkpoint(obj: object, parts: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint payload.

    Without ``parts``: the mapping under ``state_dict`` or ``model``, or the payload itself when it maps names to
    tensors. With ``parts`` (QAFE-Net's script saves one state dict per sub-network): those entries merged into one
    dict, each key prefixed by its part name and a dot.
    """
    if not isinstance(obj, Mapping):
        raise ModelError(f"checkpoint holds a {type(obj).__name__}, not a mapping with a state dict")
    if parts:
        missing = [p for p in parts if not isinstance(obj.get(p), Mapping)]
        if missing:
            raise ModelError(f"checkpoint lacks the state dicts {missing} (it has {sorted(map(str, obj))})")
        merged: dict[str, torch.Tensor] = {}
        for p in parts:
            for k, v in obj[p].items():
                key = f"{p}.{str(k).removeprefix('module.')}"  # each part may have been wrapped in DataParallel
                merged[key] = _tensor(v, key)
        return merged
    for key in ("state_dict", "model"):
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            return {str(k): _tensor(v, str(k)) for k, v in inner.items()}
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {str(k): v for k, v in obj.items()}
    raise ModelError("checkpoint holds no state dict (expected a tensor mapping, or one under 'state_dict'/'model')")


def _tensor(value: object, key: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ModelError(f"checkpoint entry {key} is a {type(value).__name__}, not a tensor")
    return value


def load_strict(module: nn.Module, official: Mapping[str, torch.Tensor], keymap: KeyMap) -> None:
    """Rename ``official`` with ``keymap`` and load it into ``module``: every key of ours but the map's ``fresh``
    ones must be filled, every mapped key must exist with the same shape."""
    mapped = keymap.to_ours(official)
    ours = module.state_dict()
    unexpected = sorted(set(mapped) - set(ours))
    missing = sorted(k for k in set(ours) - set(mapped) if not keymap.is_fresh(k))
    misshapen = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(ours[k].shape)}" for k, v in mapped.items()
                 if k in ours and v.shape != ours[k].shape]  # fmt: skip
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys, e.g. {missing[:5]}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys, e.g. {unexpected[:5]}")
    if misshapen:
        problems.append(f"size mismatch: {'; '.join(misshapen[:3])}")
    if problems:
        raise ModelError(f"{keymap.name}: checkpoint does not fit the model: {', '.join(problems)}")
    module.load_state_dict(mapped, strict=False)


def load_file(module: nn.Module, path: Path, keymap: KeyMap, parts: tuple[str, ...] = ()) -> None:
    """Load an official checkpoint file into ``module`` (see the module docstring)."""
    load_strict(module, unwrap_checkpoint(read_untrusted(Path(path)), parts), keymap)
