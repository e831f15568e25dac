"""Torch dataset of model inputs, with the paper's augmentation in training.

Training: random temporal sampling of the RGB frames (consecutive from a random start), random crop and horizontal
flip of the frames, random reversal of the trajectory clip (``index_t`` is not reversed, as in the reference).
Evaluation: exactly what the live scorer feeds the model (:mod:`common.model_input`): RGB frames spread uniformly
over the clip, at the model's side (resized once from the crop by the one resize rule when the cache was built),
normalised by the same function. Trajectories are always loop-padded or latter-truncated to T_p, with ``index_t`` by the
config's ``model.time_index`` rule (``common.features``: position within the window unless official weights need the
reference's rule).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.utils.data import Dataset

from common import model_input
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
    fps: float = 25.0
    time_index: str = "window"

    def input_spec(self) -> model_input.InputSpec:
        return model_input.InputSpec(t_p=self.t_p, rgb_frames=self.rgb_frames, rgb_size=self.image_size,
                                     rgb_mean=IMAGENET_MEAN, rgb_std=IMAGENET_STD, fps=self.fps,
                                     time_index=self.time_index)  # fmt: skip


def normalise(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 3, H, W] -> ImageNet-normalised float (the formula of :func:`common.model_input.normalise_rgb`)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
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
        traj, frames = clip.load() if spec.train else clip.load_eval()
        s = model_input.sample(traj.shape[0], spec.input_spec(), train=spec.train, rng=rng)
        model_traj = np.ascontiguousarray(traj[s.traj_idx])
        if spec.train and rng.random() < spec.reverse_p:
            model_traj = model_traj[::-1].copy()
        if spec.train:
            rgb = torch.from_numpy(frames[s.rgb_idx]).permute(0, 3, 1, 2)  # [T, 3, L, L]
            size, load = spec.image_size, rgb.shape[-1]
            y, x = (int(v) for v in rng.integers(0, load - size + 1, size=2))
            rgb = rgb[..., y : y + size, x : x + size]
            if rng.random() < spec.flip_p:
                rgb = rgb.flip(-1)
            out = normalise(rgb)
        else:
            out = torch.from_numpy(model_input.rgb_input(frames[s.rgb_idx], spec.input_spec()))
        label = torch.tensor(clip.record.label, dtype=torch.float32)
        return out.contiguous(), torch.from_numpy(model_traj), torch.from_numpy(s.index_t), label
