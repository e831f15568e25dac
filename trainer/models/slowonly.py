"""SlowOnly heatmap encoder: the 3-stage ResNet3d-50 of PoseC3D as QAFE-Net configures it (models.md §2.3), plain torch.

Input: one subclip's heatmap volume [N, 3, T=16, 56, 56] (channels, then time). Output: [N, 512].

* Stem: Conv3d 1x7x7 (stride 1) + BN + ReLU, then max-pool 1x3x3 with stride 1 (no early down-sampling).
* Three stages of bottlenecks (expansion 4) with 4, 6 and 3 blocks and planes base, 2*base, 4*base (32, 64, 128),
  so the stage outputs are 128, 256 and 512 channels. Spatial stride 2 at the first block of every stage
  (56 -> 28 -> 14 -> 7), time kept (16). Stage 1 is not inflated (1x1x1 then 1x3x3 convs, purely per frame);
  stages 2-3 inflate the first conv of each block to 3x1x1 (PoseC3D's "3x1x1" style).
* Global average over (T, H, W). The reference pools with a fixed AvgPool3d((16, 7, 7)), so it only accepts
  exactly 16x56x56; the mean over the whole grid is the same number there and also works for the reduced sizes.

Parameter names follow mmaction/mmcv (``conv1.conv``, ``conv1.bn``, ``layer1.0.conv2.conv``, ``layer2.0.downsample.
conv`` ...) so PoseC3D's ``pose_only.pth`` maps onto it by stripping ``backbone.`` (:data:`trainer.keymaps.SLOWONLY`).
Initialisation: Kaiming-normal convs (fan out), BN weight 1 and bias 0, and the last BN of every bottleneck at 0 so
each block starts as the identity (mmaction's ``zero_init_residual``; it only matters when training from scratch).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class SlowOnlyConfig:
    """Shape of the heatmap encoder; defaults are QAFE-Net's (3 stages, base 32, blocks 4/6/3, 16x56x56 input)."""

    in_channels: int = 3
    base_channels: int = 32
    stage_blocks: tuple[int, ...] = (4, 6, 3)
    inflate: tuple[int, ...] = (0, 1, 1)  # per stage: 1 = first conv of each block is 3x1x1
    spatial_strides: tuple[int, ...] = (2, 2, 2)
    temporal_strides: tuple[int, ...] = (1, 1, 1)
    stem_kernel: tuple[int, int, int] = (1, 7, 7)
    frames: int = 16  # subclip length T
    size: int = 56  # heatmap side H = W

    @property
    def out_dim(self) -> int:
        return int(self.base_channels * 4 * 2 ** (len(self.stage_blocks) - 1))

    def validate(self) -> None:
        n = len(self.stage_blocks)
        if not n or len(self.inflate) != n or len(self.spatial_strides) != n or len(self.temporal_strides) != n:
            raise ValueError("stage_blocks, inflate, spatial_strides and temporal_strides need one entry per stage")
        if self.base_channels <= 0 or self.frames <= 0 or self.size <= 0:
            raise ValueError("base_channels, frames and size must be positive")


def paper() -> SlowOnlyConfig:
    """QAFE-Net's SlowOnly: base 32, blocks 4/6/3, 16 frames of 56x56 (about 1.97 M parameters)."""
    return SlowOnlyConfig()


def small() -> SlowOnlyConfig:
    """For 2 CPU cores: base 8 (output 128), one block per stage, 8-frame subclips of 28x28."""
    return SlowOnlyConfig(base_channels=8, stage_blocks=(1, 1, 1), frames=8, size=28)


def micro() -> SlowOnlyConfig:
    """For tests: base 2 (output 32), one block per stage, 4-frame subclips of 16x16."""
    return SlowOnlyConfig(base_channels=2, stage_blocks=(1, 1, 1), frames=4, size=16)


class ConvBN(nn.Module):
    """Conv3d without bias, BatchNorm3d, optional ReLU (mmcv's ConvModule with these settings)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: tuple[int, int, int],
        stride: tuple[int, int, int] = (1, 1, 1),
        relu: bool = True,
    ) -> None:
        super().__init__()
        padding = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2, (kernel[2] - 1) // 2)
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm3d(c_out)
        self.relu: nn.Module = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.relu(self.bn(self.conv(x)))
        return out


class Bottleneck(nn.Module):
    """1x1x1 (or 3x1x1 when inflated) -> 1x3x3 (strided) -> 1x1x1 (x4 channels), plus the shortcut, then ReLU."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: tuple[int, int], inflate: bool) -> None:
        super().__init__()
        t_stride, s_stride = stride
        self.conv1 = ConvBN(c_in, planes, (3, 1, 1) if inflate else (1, 1, 1))
        self.conv2 = ConvBN(planes, planes, (1, 3, 3), stride=(t_stride, s_stride, s_stride))
        self.conv3 = ConvBN(planes, planes * self.expansion, (1, 1, 1), relu=False)
        self.downsample: ConvBN | None = None
        if s_stride != 1 or t_stride != 1 or c_in != planes * self.expansion:
            self.downsample = ConvBN(
                c_in, planes * self.expansion, (1, 1, 1), stride=(t_stride, s_stride, s_stride), relu=False
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out: torch.Tensor = self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)
        return out


class SlowOnly(nn.Module):
    """The heatmap encoder: [N, C, T, H, W] -> [N, out_dim]."""

    def __init__(self, cfg: SlowOnlyConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.conv1 = ConvBN(cfg.in_channels, cfg.base_channels, cfg.stem_kernel)
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 1, 1), padding=(0, 1, 1))
        c_in = cfg.base_channels
        self.stage_names: list[str] = []
        for i, blocks in enumerate(cfg.stage_blocks):
            planes = cfg.base_channels * 2**i
            stride = (cfg.temporal_strides[i], cfg.spatial_strides[i])
            layer = [Bottleneck(c_in, planes, stride, bool(cfg.inflate[i]))]
            c_in = planes * Bottleneck.expansion
            layer += [Bottleneck(c_in, planes, (1, 1), bool(cfg.inflate[i])) for _ in range(1, blocks)]
            name = f"layer{i + 1}"
            self.add_module(name, nn.Sequential(*layer))
            self.stage_names.append(name)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.conv3.bn.weight)

    @property
    def out_dim(self) -> int:
        return self.cfg.out_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, T, H, W] -> the last stage's feature volume [N, out_dim, T', H', W']."""
        x = self.maxpool(self.conv1(x))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.features(x).mean(dim=(2, 3, 4))
        return out
