"""Torch dataset of model inputs, with the paper's augmentation in training.

Training: random temporal sampling of the RGB frames (consecutive from a random start), random crop and horizontal
flip of the frames, random reversal of the trajectory clip (``index_t`` is not reversed, as in the reference).
Evaluation: RGB frames spread uniformly over the clip, resized to the model size. Trajectories are always loop-padded
or latter-truncated to T_p, with ``index_t`` by the config's ``model.time_index`` rule (``common.features``: position
within the window unless official weights need the reference's rule).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from common import features
from trainer.data.cache import CachedClip

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class SampleSpec:
    t_p: int
    rgb_frames: int
    image_size: int
    train: bool
    reverse_p: float = 0.5
    flip_p: float = 0.5
    time_index: str = "window"


def normalise(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 3, H, W] -> ImageNet-normalised float."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (frames.float() / 255.0 - mean) / std


class ClipSamples(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Items are (frames [T_f, 3, S, S], trajectory [T_p, 63, 5], index_t [T_p], label [])."""

    def __init__(self, clips: list[CachedClip], spec: SampleSpec, seed: int = 0, replicate: int = 1) -> None:
        self.clips = clips
        self.spec = spec
        self.seed = seed
        self.replicate = max(1, replicate)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.clips) * self.replicate

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        clip = self.clips[i % len(self.clips)]
        spec = self.spec
        rng = np.random.default_rng([self.seed, self.epoch, i])
        traj, frames = clip.load()
        model_traj, index_t = features.model_input(traj, spec.t_p, spec.time_index)
        if spec.train and rng.random() < spec.reverse_p:
            model_traj = model_traj[::-1].copy()
        idx = features.rgb_frame_indices(frames.shape[0], spec.rgb_frames, train=spec.train, rng=rng)
        rgb = torch.from_numpy(frames[idx]).permute(0, 3, 1, 2)  # [T, 3, L, L]
        size, load = spec.image_size, rgb.shape[-1]
        if spec.train:
            y, x = (int(v) for v in rng.integers(0, load - size + 1, size=2))
            rgb = rgb[..., y : y + size, x : x + size]
            if rng.random() < spec.flip_p:
                rgb = rgb.flip(-1)
            out = normalise(rgb)
        else:
            out = normalise(rgb)
            if load != size:
                out = F.interpolate(out, size=(size, size), mode="bilinear", align_corners=False)
        label = torch.tensor(clip.record.label, dtype=torch.float32)
        return out.contiguous(), torch.from_numpy(model_traj), torch.from_numpy(index_t), label
