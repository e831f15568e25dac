"""QAFE-Net: RGB (Former-DFER) and landmark-heatmap (SlowOnly) streams fused by cross-fusion blocks (models.md §2).

One regressor per expression. Inputs: RGB frames [B, T_f, 3, S, S] (clean layout, normalised with the RGB config's
mean/std) and heatmap images [B, T_f, 3, H, H] in [0, 1] at the same frame indices (``common.heatmaps``). Output:
the score [B], unbounded, on the label scale.

* Streams: the T_f frames form n = T_f / L subclips of L frames. Former-DFER gives one token per subclip; SlowOnly
  encodes each subclip's heatmap volume [3, L, H, H] to one token. Both [B, n, D].
* Cross-fusion decoder (3 blocks): the learned subclip positional embedding is added to the first stream; the two
  streams are concatenated to 2n tokens; each block updates both halves with *one* shared cross-attention (queries
  from one half, keys/values from the other half as it was before the block), one shared MLP and shared norms:
  ``x1' = x1 + A(LN_q x1, LN_kv x2); x1' += MLP(LN_2 x1')`` and the same for x2 with x1 (not x1') as context.
* A Conv1d(2n, 2n, k=1) mixes the tokens; the MLP head (D -> D/2 -> D/4 -> 1, ReLU) scores every token and the
  score is their mean.

``position_on`` chooses which stream gets the positional embedding and comes first: ``"heatmap"`` is what the
shipped script does (it calls the decoder with the heatmap features first), ``"rgb"`` what the paper's text says.
The default follows the code, whose numbers the paper reports. The heatmap rendering (paper: weights x RGB; script:
JET colours) is the config's :class:`~common.heatmaps.HeatmapSpec`, so it travels in checkpoints and manifests.

Options beside the paper's inputs (all off by default): ``centre`` subtracts each window's mean over time;
``delta`` subtracts a reference frame (``delta_from``: each subclip's first or the window's first) from the heatmaps
(``heatmaps``) or from the heatmaps and the normalised RGB frames (``both``), so nothing that holds still reaches an
encoder; ``rgb_stream = "off"`` replaces the RGB tokens by zeros (the heatmap stream alone, an ablation). All run
inside the model, so the exported graphs apply them to every live window as training did.

For live use the per-frame part (Former-DFER's S-Former) is separate (:meth:`QafeNet.encode_frames`), as in
TraMP-Former; the heatmap images are drawn per frame by numpy and cached; SlowOnly's temporal convolutions run per
window (:meth:`QafeNet.forward_features`). With ``delta = "both"`` a frame's S-Former input depends on its window's
reference frame, so the cached per-frame row is the normalised frame itself and the S-Former runs per window.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from common.heatmaps import HeatmapSpec
from trainer.models import formerdfer, slowonly
from trainer.models.base import config_from_dict
from trainer.models.formerdfer import FormerDFER, FormerDFERConfig
from trainer.models.layers import CrossAttention, Mlp
from trainer.models.slowonly import SlowOnly, SlowOnlyConfig

POSITION_ON = ("heatmap", "rgb")
CENTRE = ("none", "heatmaps", "both")
DELTA = ("none", "heatmaps", "both")
DELTA_FROM = ("subclip", "window")
RGB_STREAM = ("on", "off")


@dataclasses.dataclass(frozen=True)
class QafeNetConfig:
    """The whole model; travels inside checkpoints and manifests so the model rebuilds from its file alone."""

    rgb: FormerDFERConfig = dataclasses.field(default_factory=formerdfer.paper)
    heat: SlowOnlyConfig = dataclasses.field(default_factory=slowonly.paper)
    heatmap: HeatmapSpec = dataclasses.field(default_factory=HeatmapSpec)
    rgb_frames: int = 80
    fusion_blocks: int = 3
    fusion_heads: int = 8
    mlp_ratio: float = 4.0
    position_on: str = "heatmap"  # heatmap (the shipped script) | rgb (the paper's text)
    centre: str = "none"  # none (the paper) | heatmaps | both: subtract each window's mean over time (CENTRE)
    delta: str = "none"  # none (the paper) | heatmaps | both: subtract a reference frame (DELTA, DELTA_FROM)
    delta_from: str = "subclip"  # the reference frame: each subclip's first (subclip) or the window's first (window)
    rgb_stream: str = "on"  # on (the paper) | off: the RGB tokens replaced by zeros (the heatmap stream alone)

    @property
    def dim(self) -> int:
        return self.rgb.out_dim

    @property
    def subclips(self) -> int:
        return self.rgb_frames // self.rgb.subclip_len

    def validate(self) -> None:
        self.rgb.validate()
        self.heat.validate()
        self.heatmap.validate()
        if self.rgb.out_dim != self.heat.out_dim:
            raise ValueError(f"RGB features ({self.rgb.out_dim}) and heatmap features ({self.heat.out_dim}) differ")
        if self.heat.frames != self.rgb.subclip_len:
            raise ValueError(f"SlowOnly frames {self.heat.frames} != Former-DFER subclip_len {self.rgb.subclip_len}")
        if self.heatmap.crop != self.heat.size:
            raise ValueError(f"heatmap crop {self.heatmap.crop} != SlowOnly input size {self.heat.size}")
        if self.rgb_frames % self.rgb.subclip_len or self.rgb_frames <= 0:
            raise ValueError(f"rgb_frames={self.rgb_frames} must be a positive multiple of {self.rgb.subclip_len}")
        if self.dim % self.fusion_heads or self.dim % 4:
            raise ValueError("feature width must be divisible by fusion_heads and by 4")
        if self.centre not in CENTRE:
            raise ValueError(f"centre must be one of {CENTRE}, got {self.centre!r}")
        for name, allowed in (("delta", DELTA), ("delta_from", DELTA_FROM), ("rgb_stream", RGB_STREAM)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.centre != "none" and self.delta != "none":
            raise ValueError(
                f"centre={self.centre!r} and delta={self.delta!r}: choose one way to remove what stays still"
            )
        if self.position_on not in POSITION_ON:
            raise ValueError(f"position_on must be one of {POSITION_ON}, got {self.position_on!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> QafeNetConfig:
        return config_from_dict(cls, raw)


def paper(t_p: int = 0) -> QafeNetConfig:
    """The published shape: 80 frames at 224 (5 subclips of 16), heatmaps 16x56x56 per subclip, D = 512, 3 blocks.
    (``t_p`` is accepted for a uniform factory signature; QAFE-Net has no trajectory input.)"""
    return QafeNetConfig()


def small(t_p: int = 0) -> QafeNetConfig:
    """Trains on 2 CPU cores: 16 frames at 64 px (2 subclips of 8), heatmaps 8x28x28 (stored at 32), D = 128."""
    return QafeNetConfig(
        rgb=formerdfer.small(),
        heat=slowonly.small(),
        heatmap=HeatmapSpec(size=32, crop=28),
        rgb_frames=16,
        fusion_heads=4,
        mlp_ratio=2.0,
    )


def micro(t_p: int = 0) -> QafeNetConfig:
    """For tests: 8 frames at 32 px (2 subclips of 4), heatmaps 4x16x16 (stored at 16), D = 32."""
    rgb = dataclasses.replace(formerdfer.micro(), widths=(8, 8, 16, 32))
    return QafeNetConfig(
        rgb=rgb,
        heat=slowonly.micro(),
        heatmap=HeatmapSpec(size=16, crop=16),
        rgb_frames=8,
        fusion_heads=2,
        mlp_ratio=2.0,
    )


SIZES = {"paper": paper, "small": small, "micro": micro}


class CrossFusionBlock(nn.Module):
    """Both halves attend to each other through one shared attention, MLP and set of norms."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, heads)
        self.norm_2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _update(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm_q(x), self.norm_kv(context))
        out: torch.Tensor = x + self.mlp(self.norm_2(x))
        return out

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._update(first, second), self._update(second, first)


class CrossFusion(nn.Module):
    """Positional embedding on the first stream, the blocks, then the Conv1d over the 2n concatenated tokens."""

    def __init__(self, cfg: QafeNetConfig) -> None:
        super().__init__()
        n, d = cfg.subclips, cfg.dim
        self.pos_embed = nn.Parameter(torch.randn(1, n, d))
        self.blocks = nn.ModuleList(
            [CrossFusionBlock(d, cfg.fusion_heads, cfg.mlp_ratio) for _ in range(cfg.fusion_blocks)]
        )
        self.token_mix = nn.Conv1d(2 * n, 2 * n, kernel_size=1)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """[B, n, D] and [B, n, D] -> [B, 2n, D]."""
        first = first + self.pos_embed
        for block in self.blocks:
            first, second = block(first, second)
        out: torch.Tensor = self.token_mix(torch.cat([first, second], dim=1))
        return out


class QafeNet(nn.Module):
    """The fused regressor. See the module docstring."""

    FAMILY: ClassVar[str] = "qafe_net"
    INPUTS: ClassVar[tuple[str, ...]] = ("frames", "heatmaps")
    WINDOW_INPUTS: ClassVar[tuple[str, ...]] = ("frame_features", "heatmaps")

    def __init__(self, cfg: QafeNetConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.rgb_encoder = FormerDFER(cfg.rgb)
        self.heatmap_encoder = SlowOnly(cfg.heat)
        self.fusion = CrossFusion(cfg)
        d = cfg.dim
        self.head = nn.Sequential(
            nn.Linear(d, d // 2), nn.ReLU(), nn.Linear(d // 2, d // 4), nn.ReLU(), nn.Linear(d // 4, 1)
        )

    @property
    def frame_feature_dim(self) -> int:
        """Width of the per-frame rows :meth:`encode_frames` gives (and the window graph reads)."""
        s = self.cfg.rgb.image_size
        return 3 * s * s if self.cfg.delta == "both" else self.cfg.dim

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """[N, 3, S, S] normalised frames -> [N, frame_feature_dim]: the per-frame part a live scorer caches.
        With ``delta = both`` a frame's features depend on its window's reference frame, so what is cached is the
        frame itself (flattened) and Former-DFER's spatial part runs per window (:meth:`_frame_features`)."""
        if self.cfg.delta == "both":
            return frames.flatten(1)
        return self.rgb_encoder.encode_frames(frames)

    def _frame_features(self, rows: torch.Tensor) -> torch.Tensor:
        """Cached per-frame rows [B, T_f, frame_feature_dim] -> Former-DFER's per-frame features [B, T_f, D]."""
        if self.cfg.delta != "both":
            return rows
        b, t = rows.shape[:2]
        s = self.cfg.rgb.image_size
        frames = rows.reshape(b, t, 3, s, s)
        moved = frames - self._reference(frames)
        return self.rgb_encoder.encode_frames(moved.reshape(b * t, 3, s, s)).reshape(b, t, -1)

    def encode_heatmaps(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """[B, T_f, 3, H, H] heatmap images -> [B, n, D]: SlowOnly over each subclip's volume."""
        return self._heatmap_volume(heatmaps).mean(dim=(2, 3, 4)).reshape(heatmaps.shape[0], self.cfg.subclips, -1)

    def _heatmap_volume(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """[B, T_f, 3, H, H] -> SlowOnly's last feature volume per subclip [B*n, D, L, H', W'] (time kept)."""
        b, t, c, h, w = heatmaps.shape
        if self.cfg.centre != "none":
            heatmaps = heatmaps - heatmaps.mean(dim=1, keepdim=True)
        if self.cfg.delta != "none":
            heatmaps = heatmaps - self._reference(heatmaps)
        n, length = t // self.cfg.rgb.subclip_len, self.cfg.rgb.subclip_len
        volumes = heatmaps.reshape(b * n, length, c, h, w).permute(0, 2, 1, 3, 4)  # [B*n, 3, L, H, W]
        return self.heatmap_encoder.features(volumes)

    def _reference(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T_f, ...] -> the frame each one is compared with under ``delta``, broadcastable to ``x``: the window's
        first frame, or each subclip's first frame repeated over its subclip."""
        if self.cfg.delta_from == "window":
            return x[:, :1]
        b = x.shape[0]
        n, length = self.cfg.subclips, self.cfg.rgb.subclip_len
        first = x.reshape(b, n, length, *x.shape[2:])[:, :, :1]
        return first.expand(b, n, length, *x.shape[2:]).reshape(x.shape)

    def _score(self, frame_features: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
        """Cached frame features [B, T_f, D] and heatmap subclip tokens [B, n, D] -> [B]."""
        if self.cfg.centre == "both":
            frame_features = frame_features - frame_features.mean(dim=1, keepdim=True)
        rgb = self.rgb_encoder.encode_subclips(frame_features)
        if self.cfg.rgb_stream == "off":
            rgb = torch.zeros_like(rgb)
        first, second = (heat, rgb) if self.cfg.position_on == "heatmap" else (rgb, heat)
        tokens = self.fusion(first, second)
        out: torch.Tensor = self.head(tokens).squeeze(-1).mean(dim=1)
        return out

    def forward_features(self, frame_features: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        """Score from cached frame rows [B, T_f, frame_feature_dim] and heatmap images [B, T_f, 3, H, H] -> [B]."""
        return self._score(self._frame_features(frame_features), self.encode_heatmaps(heatmaps))

    def forward(self, frames: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        """Score from frames [B, T_f, 3, S, S] and heatmap images [B, T_f, 3, H, H] -> [B]."""
        b, t = frames.shape[:2]
        feats = self.encode_frames(frames.reshape(b * t, *frames.shape[2:])).reshape(b, t, -1)
        return self.forward_features(feats, heatmaps)

    def forward_per_frame(
        self, frames: torch.Tensor, heatmaps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training only (``trainer.models.qafe_motion``): the score [B] as :meth:`forward` gives it, with each
        frame's RGB features [B, T_f, D] (Former-DFER's per-frame part) and heatmap features [B, T_f, D] (SlowOnly's
        last stage averaged over space, its time axis kept), from one pass through the encoders."""
        b, t = frames.shape[:2]
        feats = self._frame_features(self.encode_frames(frames.reshape(b * t, *frames.shape[2:])).reshape(b, t, -1))
        volume = self._heatmap_volume(heatmaps)  # [B*n, D, L, H', W']
        heat = volume.mean(dim=(2, 3, 4)).reshape(b, self.cfg.subclips, -1)
        per_frame = volume.mean(dim=(3, 4)).permute(0, 2, 1).reshape(b, t, -1)  # subclips in order: [B, T_f, D]
        return self._score(feats, heat), feats, per_frame
