"""Torch dataset of model inputs, with the papers' augmentation in training.

Items are dicts of named tensors, the names being the model family's inputs (``frames``, ``trajectory``,
``index_t``, ``heatmaps``) plus ``label``:

* ``frames`` [T_f, 3, S, S] (every model but TraMP-Former with ``model.rgb = false``): training draws T_f consecutive frames from a random start, a random S x S crop of the
  cached load-size frames and a horizontal flip; evaluation is exactly what the live scorer feeds the model
  (:mod:`common.model_input`): T_f frames spread uniformly over the clip, at the model's side (resized once from the
  crop by the one resize rule when the cache was built). Both normalised with the model's own mean/std
  (:class:`~trainer.models.formerdfer.FormerDFERConfig`) by the formula of :func:`common.model_input.normalise_rgb`.
* ``trajectory`` [T_p, 63, 5] and ``index_t`` [T_p] (TraMP-Former): loop-padded or latter-truncated to T_p, with
  ``index_t`` by the model config's ``time_index`` rule (``common.features``: position within the window unless
  official weights need the reference's rule); training reverses the clip at random (``index_t`` is not reversed, as
  in the reference) and, with ``time_warp`` > 0, first resamples the whole clip in time (:func:`time_warp`).
* ``heatmaps`` [T_f, 3, H, H] (QAFE-Net): the cached heatmap images at the same frame indices as ``frames``; training
  draws its own random crop and flip (independent of the RGB stream's, as in the reference), evaluation takes the
  centre crop (``common.heatmaps.model_heatmaps``, the function the scorer calls).
* ``motion`` [T_f, 6] (training only, with ``train.motion_aux``): how far the face moved from the first of the
  frames shown to each of them (:func:`trainer.models.qafe_motion.movement_targets`), from those frames' landmarks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from common import model_input
from common.errors import ConfigError
from common.heatmaps import HeatmapSpec, model_heatmaps
from trainer.data.cache import CachedClip
from trainer.models.qafe_motion import movement_targets

Item = dict[str, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class SampleSpec:
    t_p: int  # 0: the model takes no trajectory
    rgb_frames: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    train: bool
    heatmap: HeatmapSpec | None = None
    reverse_p: float = 0.5
    flip_p: float = 0.5
    fps: float = 25.0  # only checked here: the cache already picked the frames at the model's rate
    time_index: str = "window"  # common.features.TIME_INDEX_RULES
    rgb: bool = True  # False: the model reads no frames (TraMP-Former with model.rgb = false): none are loaded
    colour_jitter: float = 0.0  # training only: the strength of one colour change per clip (0 = none; see Colour)
    scale_jitter: float = 0.0  # training only: the strength of one zoom and shift per clip (0 = none; see Geometry)
    time_warp: float = 0.0  # training only: the strength of one resampling of the clip in time (0 = none; time_warp)
    motion_target: bool = False  # training only: add ``motion``, each shown frame's movement (qafe_motion)
    frame_rule: str = "consecutive"  # training only: FRAME_RULES (evaluation always spreads them uniformly)

    def input_spec(self) -> model_input.InputSpec:
        """The shared model-input spec (a model without a trajectory still samples its RGB frames by its rules)."""
        return model_input.InputSpec(t_p=max(self.t_p, 1), rgb_frames=self.rgb_frames, rgb_size=self.image_size,
                                     rgb_mean=self.mean, rgb_std=self.std, fps=self.fps,
                                     time_index=self.time_index)  # fmt: skip


def reads_frames(mcfg: Any) -> bool:
    """Whether a model config reads a clip's frames (an RGB stream or landmark heatmaps drawn on the frames): every
    model but TraMP-Former with ``model.rgb = false``."""
    return bool(getattr(mcfg, "use_rgb", True)) or isinstance(getattr(mcfg, "heatmap", None), HeatmapSpec)


def sample_spec(mcfg: Any, *, train: bool, reverse_p: float = 0.5, flip_p: float = 0.5, colour_jitter: float = 0.0,
                scale_jitter: float = 0.0, time_warp: float = 0.0, motion_target: bool = False,
                frame_rule: str = "consecutive") -> SampleSpec:  # fmt: skip
    """What one model config needs from each clip (any family's config)."""
    skate = getattr(mcfg, "skate", None)
    heatmap = getattr(mcfg, "heatmap", None)
    return SampleSpec(
        t_p=int(skate.t_p) if skate is not None else 0,
        rgb_frames=int(mcfg.rgb_frames),
        image_size=int(mcfg.rgb.image_size),
        mean=tuple(mcfg.rgb.mean),
        std=tuple(mcfg.rgb.std),
        train=train,
        heatmap=heatmap if isinstance(heatmap, HeatmapSpec) else None,
        reverse_p=reverse_p,
        flip_p=flip_p,
        time_index=str(getattr(mcfg, "time_index", "window")),
        rgb=bool(getattr(mcfg, "use_rgb", True)),
        colour_jitter=colour_jitter if train else 0.0,
        scale_jitter=scale_jitter if train else 0.0,
        time_warp=time_warp if train else 0.0,
        motion_target=motion_target and train,
        frame_rule=check_frame_rule(frame_rule) if train else "consecutive",
    )


FRAME_RULES = ("consecutive", "spread")
"""Which frames a training clip shows the RGB and heatmap streams: ``consecutive`` T_f frames from a random start (the
papers' rule), or ``spread`` over the whole clip as evaluation and the live scorer take them, each moved at random by
up to half the step between two (:func:`spread_frames`)."""


def check_frame_rule(rule: str) -> str:
    if rule not in FRAME_RULES:
        raise ConfigError(f"train.frame_rule must be one of {FRAME_RULES}, got {rule!r}")
    return rule


def spread_frames(n_frames: int, count: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """``count`` frame indices of an ``n_frames`` clip, in order: evaluation's uniform spread over the whole clip
    (:func:`common.features.rgb_frame_indices`), each position moved by U(-1/2, 1/2) of the step between two, so a
    training clip shows its whole movement as a scored one does, at other frames each time. A clip no longer than
    ``count`` is looped as evaluation loops it."""
    if n_frames <= count:
        return np.arange(count, dtype=np.int64) % n_frames
    step = (n_frames - 1) / (count - 1) if count > 1 else 0.0
    pos = np.arange(count) * step + rng.uniform(-step / 2, step / 2, size=count)
    return np.sort(np.clip(np.rint(pos), 0, n_frames - 1).astype(np.int64))


def time_warp(
    traj: npt.NDArray[np.float32], rng: np.random.Generator, strength: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """One clip played at a random speed: its ``n`` frames become ``round(n / f)`` with ``log f ~ U(-s, s)`` for
    strength ``s``; returns the trajectory linearly interpolated between frames and, for frames and heatmaps, the
    nearest source frame of each new one. Every duration in the clip (ramps, hold, margins) scales by the same
    ``1 / f``, so in training how long a movement takes stops telling its severity (the phantom's ramps last
    ``x (1 + 0.25 s)`` longer at impairment ``s``; its timing-decoupled population has no such slowing) while how far
    the face moves is kept."""
    n = traj.shape[0]
    factor = float(np.exp(rng.uniform(-strength, strength)))
    src = np.linspace(0.0, n - 1.0, max(2, round(n / factor)))
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = (src - lo).astype(np.float32)[:, None, None]
    warped = (traj[lo] * (1.0 - w) + traj[hi] * w).astype(np.float32)
    return warped, np.rint(src).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Colour:
    """One clip's colour change, the same for every frame: the channels reordered (``order``), then scaled by
    ``gain`` (brightness times a per-channel tint), and, for camera frames only, the contrast scaled by ``contrast``
    about the clip's mean grey. On heatmap images (weights x RGB) the order and gains act as on the frame they were
    drawn from, since they commute with the weights; the contrast is left out there."""

    order: tuple[int, int, int]
    gain: tuple[float, float, float]
    contrast: float

    @classmethod
    def draw(cls, rng: np.random.Generator, strength: float) -> Colour:
        """Channel order uniformly at random; log-gains: brightness U(-s, s) plus per channel U(-s/2, s/2); log
        contrast U(-s, s), for strength s."""
        order = tuple(int(v) for v in rng.permutation(3))
        gain = np.exp(rng.uniform(-strength, strength) + rng.uniform(-strength / 2, strength / 2, size=3))
        contrast = float(np.exp(rng.uniform(-strength, strength)))
        return cls((order[0], order[1], order[2]), (float(gain[0]), float(gain[1]), float(gain[2])), contrast)

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.tensor(self.gain, dtype=torch.float32).view(3, 1, 1)
        return x[..., list(self.order), :, :] * g

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """[T, 3, H, W] in [0, 1] -> the same, changed."""
        y = self._scaled(x)
        grey = y.mean()
        return ((y - grey) * self.contrast + grey).clamp(0.0, 1.0)

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """[T, 3, H, W] heatmap images in [0, 1] -> the same, changed."""
        return self._scaled(x).clamp(0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """One clip's zoom and shift, the same for every frame and, in image-relative units, for both streams (a heatmap
    image and its frame cover the same crop): the image is scaled by ``scale`` about its centre and moved by
    ``shift`` (x, y) in fractions of its side; bilinear, what comes in from outside is black."""

    scale: float
    shift: tuple[float, float]

    @classmethod
    def draw(cls, rng: np.random.Generator, strength: float) -> Geometry:
        """log-scale U(-s, s) and each shift U(-s/2, s/2), for strength s."""
        scale = float(np.exp(rng.uniform(-strength, strength)))
        dx, dy = (float(v) for v in rng.uniform(-strength / 2, strength / 2, size=2))
        return cls(scale, (dx, dy))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """[T, C, H, W] float -> the same, moved."""
        dx, dy = self.shift
        # affine_grid maps output to input coordinates in [-1, 1]: out = scale * in + 2 * shift, inverted
        a, tx, ty = 1 / self.scale, -2 * dx / self.scale, -2 * dy / self.scale
        theta = torch.tensor([[a, 0.0, tx], [0.0, a, ty]], dtype=torch.float32)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclasses.dataclass(frozen=True)
class ClipChange:
    """The appearance changes drawn once for a training clip (either may be None)."""

    colour: Colour | None
    geometry: Geometry | None

    @classmethod
    def draw(cls, rng: np.random.Generator, spec: SampleSpec) -> ClipChange | None:
        if not spec.train or (spec.colour_jitter <= 0 and spec.scale_jitter <= 0):
            return None
        colour = Colour.draw(rng, spec.colour_jitter) if spec.colour_jitter > 0 else None
        geometry = Geometry.draw(rng, spec.scale_jitter) if spec.scale_jitter > 0 else None
        return cls(colour, geometry)

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """[T, 3, S, S] frames in [0, 1]."""
        x = x if self.colour is None else self.colour.frames(x)
        return x if self.geometry is None else self.geometry.apply(x)

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """[T, 3, H, H] heatmap images in [0, 1]."""
        x = x if self.colour is None else self.colour.heatmaps(x)
        return x if self.geometry is None else self.geometry.apply(x)


def normalise(frames: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 [..., 3, H, W] -> (x / 255 - mean) / std per channel (the formula of
    :func:`common.model_input.normalise_rgb`)."""
    return normalise_unit(frames.float() / 255.0, mean, std)


def normalise_unit(frames: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """[..., 3, H, W] in [0, 1] -> (x - mean) / std per channel."""
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (frames - m) / s


class ClipSamples(Dataset[Item]):
    """One item per clip (times ``replicate`` in training); see the module docstring."""

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

    def __getitem__(self, i: int) -> Item:
        clip = self.clips[i % len(self.clips)]
        spec = self.spec
        rng = np.random.default_rng([self.seed, self.epoch, i])
        if spec.rgb:
            traj, frames = clip.load() if spec.train else clip.load_eval()
        else:
            traj, frames = clip.trajectory(), None
        source: npt.NDArray[np.int64] | None = None  # time warp: the source frame of each frame
        observed = traj
        if spec.train and spec.time_warp > 0:
            traj, source = time_warp(traj, rng, spec.time_warp)
        s = model_input.sample(traj.shape[0], spec.input_spec(), train=spec.train, rng=rng)
        if spec.train and spec.frame_rule == "spread":
            s = dataclasses.replace(s, rgb_idx=spread_frames(traj.shape[0], spec.rgb_frames, rng))
        item: Item = {}
        if spec.t_p:
            model_traj = np.ascontiguousarray(traj[s.traj_idx])
            if spec.train and rng.random() < spec.reverse_p:
                model_traj = model_traj[::-1].copy()
            item["trajectory"] = torch.from_numpy(model_traj)
            item["index_t"] = torch.from_numpy(s.index_t)
        idx = s.rgb_idx if source is None else source[s.rgb_idx]  # the stored frames the sampled ones show
        change = ClipChange.draw(rng, spec)
        if frames is not None:
            item["frames"] = self._frames(frames[idx], rng, change)
        if spec.heatmap is not None:
            item["heatmaps"] = self._heatmaps(clip.heatmaps()[idx], spec.heatmap, rng, change)
        if spec.motion_target:  # from the landmarks of the frames shown, as observed (before any warp or jitter)
            item["motion"] = torch.from_numpy(movement_targets(observed[idx]))
        item["label"] = torch.tensor(clip.record.label, dtype=torch.float32)
        return item

    def _frames(self, frames: np.ndarray, rng: np.random.Generator, change: ClipChange | None = None) -> torch.Tensor:
        spec = self.spec
        if not spec.train:
            return torch.from_numpy(model_input.rgb_input(frames, spec.input_spec()))
        rgb = torch.from_numpy(frames).permute(0, 3, 1, 2)  # [T, 3, L, L]
        size, load = spec.image_size, rgb.shape[-1]
        y, x = (int(v) for v in rng.integers(0, load - size + 1, size=2))
        rgb = rgb[..., y : y + size, x : x + size]
        if rng.random() < spec.flip_p:
            rgb = rgb.flip(-1)
        if change is not None:
            return normalise_unit(change.frames(rgb.float() / 255.0), spec.mean, spec.std).contiguous()
        return normalise(rgb, spec.mean, spec.std).contiguous()

    def _heatmaps(
        self, images: np.ndarray, hspec: HeatmapSpec, rng: np.random.Generator, change: ClipChange | None = None
    ) -> torch.Tensor:
        if not self.spec.train:
            return torch.from_numpy(model_heatmaps(images, hspec))
        y, x = (int(v) for v in rng.integers(0, hspec.size - hspec.crop + 1, size=2))
        out = torch.from_numpy(model_heatmaps(images, hspec, offset=(y, x)))
        if change is not None:
            out = change.heatmaps(out)
        return out.flip(-1).contiguous() if rng.random() < self.spec.flip_p else out
