"""Former-DFER RGB encoder in the clean layout (models.md §1.5).

Input frames are [B, T, 3, H, W]. The spatial part (S-Former: ResNet-18 stages 1-3, one transformer layer over the
layer-3 tokens, layer 4, global pooling) runs on each frame on its own, so a live scorer can compute a frame's
feature once and reuse it in every window that contains it. The temporal part (T-Former: CLS token + positional
embedding + transformer) runs on each subclip of ``subclip_len`` consecutive frame features.

What the reference code does differently, and why we do not:

* It feeds [B, 3, T, H, W] into an encoder that assumes [B, T, 3, H, W], so every "image" the S-Former sees is
  three consecutive time slices of one colour channel. Per-frame caching is impossible that way; we keep channels as
  channels.
* Fixed naively, its subclip packing puts subclips on the batch axis in subclip-major order and then reshapes to
  [B, n, D], mixing samples when B > 1. We reshape [B*T, 3, H, W] -> [B*T, D] -> [B*n, L, D] -> [B, n, D], which keeps
  each sample's subclips together.
* It hard-codes 224 (or 112) and 512 in views; here shapes come from the config. Any multiple of 16 works (the
  S-Former's tokens are the layer-3 grid, side / 16): 224 for the QAFE/TraMP DFEW checkpoints, 112 for the upstream
  Former-DFER release.

Normalisation travels with the weights: ``mean`` / ``std`` (per channel, on frames scaled to [0, 1]) are part of the
config, so they are saved in every checkpoint and manifest. The default is ImageNet's (what QAFE-Net and TraMP-Former
apply); the upstream 112-px release was trained on [0, 1] frames without it (:data:`UNIT`).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from trainer.models.layers import Transformer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
UNIT = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
"""mean and std that leave [0, 1] frames as they are (the upstream Former-DFER recipe)."""


@dataclasses.dataclass(frozen=True)
class FormerDFERConfig:
    """Shape of the RGB encoder; defaults are the 224-pixel variant used by QAFE-Net and TraMP-Former."""

    image_size: int = 224
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    blocks: tuple[int, int, int, int] = (2, 2, 2, 2)
    s_depth: int = 1
    s_heads: int = 8
    s_head_dim: int = 32
    s_mlp_dim: int = 512
    t_depth: int = 3
    t_heads: int = 8
    t_head_dim: int = 64
    t_mlp_dim: int = 1024
    subclip_len: int = 16
    mean: tuple[float, float, float] = IMAGENET_MEAN  # frames are (x / 255 - mean) / std, per channel
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def num_patches(self) -> int:
        side = self.image_size // 16
        return side * side

    @property
    def out_dim(self) -> int:
        return self.widths[3]

    def validate(self) -> None:
        if self.image_size % 16 or self.image_size <= 0:
            raise ValueError(f"image_size must be a positive multiple of 16, got {self.image_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or not all(s > 0 for s in self.std):
            raise ValueError(f"mean and std need 3 values each (std > 0), got {self.mean}, {self.std}")


def paper() -> FormerDFERConfig:
    """ResNet-18 widths, 224x224 frames, 1 spatial and 3 temporal transformer layers, 16-frame subclips."""
    return FormerDFERConfig()


def small() -> FormerDFERConfig:
    """Quarter widths, 64x64 frames, one block per stage, 8-frame subclips."""
    return FormerDFERConfig(
        image_size=64,
        widths=(16, 32, 64, 128),
        blocks=(1, 1, 1, 1),
        s_heads=4,
        s_head_dim=16,
        s_mlp_dim=128,
        t_depth=1,
        t_heads=4,
        t_head_dim=32,
        t_mlp_dim=256,
        subclip_len=8,
    )


def micro() -> FormerDFERConfig:
    """Tiny, for tests: 32x32 frames, 4-frame subclips."""
    return FormerDFERConfig(
        image_size=32,
        widths=(8, 8, 16, 16),
        blocks=(1, 1, 1, 1),
        s_heads=2,
        s_head_dim=8,
        s_mlp_dim=32,
        t_depth=1,
        t_heads=2,
        t_head_dim=8,
        t_mlp_dim=32,
        subclip_len=4,
    )


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs), with a 1x1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out: torch.Tensor = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.relu(out + identity)
        return out


def _layer(c_in: int, c_out: int, count: int, stride: int) -> nn.Sequential:
    return nn.Sequential(*[BasicBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1) for i in range(count)])


class SFormer(nn.Module):
    """Per-frame spatial encoder: [N, 3, H, W] -> [N, widths[3]]."""

    def __init__(self, cfg: FormerDFERConfig) -> None:
        super().__init__()
        w = cfg.widths
        self.conv1 = nn.Conv2d(3, w[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _layer(w[0], w[0], cfg.blocks[0], 1)
        self.layer2 = _layer(w[0], w[1], cfg.blocks[1], 2)
        self.layer3 = _layer(w[1], w[2], cfg.blocks[2], 2)
        self.layer4 = _layer(w[2], w[3], cfg.blocks[3], 2)
        self.pos_embedding = nn.Parameter(torch.randn(1, cfg.num_patches, w[2]))
        self.transformer = Transformer(w[2], cfg.s_depth, cfg.s_heads, cfg.s_head_dim, cfg.s_mlp_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        n, c, h, w = x.shape
        tokens = self.transformer(x.flatten(2).transpose(1, 2) + self.pos_embedding)
        x = tokens.transpose(1, 2).reshape(n, c, h, w)
        out: torch.Tensor = self.layer4(x).mean(dim=(2, 3))
        return out


class TFormer(nn.Module):
    """Per-subclip temporal encoder: [M, L, D] frame features -> [M, D] (the CLS token)."""

    def __init__(self, cfg: FormerDFERConfig) -> None:
        super().__init__()
        d = cfg.widths[3]
        self.cls_token = nn.Parameter(torch.randn(1, 1, d))
        self.pos_embedding = nn.Parameter(torch.randn(1, cfg.subclip_len + 1, d))
        self.transformer = Transformer(d, cfg.t_depth, cfg.t_heads, cfg.t_head_dim, cfg.t_mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embedding
        out: torch.Tensor = self.transformer(x)[:, 0]
        return out


class FormerDFER(nn.Module):
    """The RGB encoder: frames [B, T, 3, H, W] -> subclip features [B, T / subclip_len, D]."""

    def __init__(self, cfg: FormerDFERConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.s_former = SFormer(cfg)
        self.t_former = TFormer(cfg)

    @property
    def out_dim(self) -> int:
        return self.cfg.out_dim

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] -> [N, D]: the cacheable per-frame part."""
        out: torch.Tensor = self.s_former(frames)
        return out

    def encode_subclips(self, frame_features: torch.Tensor) -> torch.Tensor:
        """[B, T, D] cached frame features -> [B, T / L, D] subclip features (T must be a multiple of L)."""
        b, t, d = frame_features.shape
        n = t // self.cfg.subclip_len
        out: torch.Tensor = self.t_former(frame_features.reshape(b * n, self.cfg.subclip_len, d))
        return out.reshape(b, n, d)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        feats = self.encode_frames(frames.reshape(b * t, *frames.shape[2:]))
        return self.encode_subclips(feats.reshape(b, t, -1))
