"""SkateFormer trajectory encoder as configured in TraMP-Former (models.md §1.4).

Input: trajectories [B, T, V=63, C=5] (frame-major, as ``common.features`` builds them) and ``index_t`` [B, T].
Output: temporal tokens [B, T / 2**(stages-1), C_last] (the last stage averaged over landmarks); their mean over
time is the 256-d clip feature of the paper.

Each block splits its channels into a learned-adjacency graph conv (G-conv), a temporal conv (T-conv) and four
partition attentions over the landmark-time grid, with V = M regions x N slots in region-major order:

====  ==========================  ==================================================
type  tokens per window           which frames / which landmarks
====  ==========================  ==================================================
1     L x N                       L consecutive frames / the N points of one region
2     L x M                       L consecutive frames / slot n in each of the M regions
3     G x N                       G frames at stride T/G / one region
4     G x M                       G frames at stride T/G / one slot across regions
====  ==========================  ==================================================

Layout: the blocks run channels last, [B, T, V, C] (the Linear layers on a [tokens, C] matrix, exported as Gemm with
the bias inside; the partitions gathered with the head dimension contiguous); only the temporal convolutions see
[B, C, T, V]. The function is the channel-first one (tested); this roughly halves the exported graph's Transpose time
and removes the separate bias Adds (paper window graph, 1 thread: 531 -> 446 ms on a quiet machine).

Kept from upstream for checkpoint compatibility: the attention scale is ``heads**-0.5`` (not ``head_dim**-0.5``)
and q, k, v come straight from the block's input mapping.

Relative position bias, two index rules (``SkateFormerConfig.bias_index``; the tables have the same shapes in both,
so one checkpoint loads under either, but the function computed differs):

* ``"centred"`` (ours, the default when training from scratch): window token ``a = t * P1 + n`` (time-major) uses its
  own frame ``t`` within the window, row ``t_a - t_b + L - 1`` for types 1-2 and ``t_a - t_b + G_max - 1`` for types
  3-4, so a temporal offset maps to the same table row at every T_p.
* ``"reference"`` (what the SkateFormer/TraMP reference code computes, so official weights mean what they learned):
  for types 1 and 3 the reference tiles its [P0, P0] bias over the whole token axis (``.repeat`` on a 5-D tensor),
  so token ``a`` uses ``a mod P0`` as its time index, not ``a // P1``; for types 3 and 4 it slices the first
  ``2G - 1`` table rows, so the row is ``t_a - t_b + G - 1``, which equals the centred row only at T_p = 256
  (G = G_max = 32). Chosen automatically when official SkateFormer or TraMP weights are loaded
  (:func:`trainer.builders.build_model`) and recorded in the config that travels with the checkpoint.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from common.features import PUPILS_106, TRAMP_POINTS_106
from trainer.models.layers import DropPath, Mlp

PARTITION_TYPES = (1, 2, 3, 4)
BIAS_INDEX_RULES = ("centred", "reference")


@dataclasses.dataclass(frozen=True)
class SkateFormerConfig:
    """Shape of the trajectory encoder; the defaults are the paper's (TraMP, T_p=128)."""

    in_channels: int = 5
    embed_dim: int = 128
    channels: tuple[int, ...] = (128, 256, 256, 256)
    depths: tuple[int, ...] = (2, 2, 2, 2)
    regions: int = 7  # M
    points_per_region: int = 9  # N
    t_p: int = 128
    segment_len: int = 8  # L: consecutive frames per local window
    global_tokens: int = 16  # G: strided frames per global window
    bias_global_tokens: int = 32  # rows of the type-3/4 bias tables are 2 * this - 1 (max_frames 256 / L)
    num_heads: int = 32
    kernel_size: int = 7
    mlp_ratio: float = 2.0
    attn_drop: float = 0.5
    drop: float = 0.0
    drop_path: float = 0.2
    input_scale: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)  # per input channel; the reference feeds raw pixels
    bias_index: str = "centred"  # centred | reference (see the module docstring)
    # Two derived input channels (see :func:`deformation`), scaled by ``motion_scale``; off in the reference's shape.
    motion_channels: bool = False
    motion_scale: float = 1 / 8
    # The deformation channels' unit: "pixels" of the 256 crop (checkpoints from before this field) or "iod", the
    # window's mean inter-pupil distance, so a movement's size reads alike at every camera distance and face size
    motion_norm: str = "pixels"

    @property
    def stem_channels(self) -> int:
        return self.in_channels + (2 if self.motion_channels else 0)

    @property
    def num_points(self) -> int:
        return self.regions * self.points_per_region

    @property
    def out_frames(self) -> int:
        return self.t_p >> (len(self.channels) - 1)

    def validate(self) -> None:
        """Raise ValueError when the partitions cannot tile the landmark-time grid at every stage."""
        if len(self.channels) != len(self.depths) or not self.channels:
            raise ValueError("channels and depths must be non-empty and of equal length")
        t = self.t_p
        for stage in range(len(self.channels)):
            if t % self.segment_len or t % self.global_tokens:
                raise ValueError(
                    f"stage {stage}: T={t} must be divisible by segment_len={self.segment_len} "
                    f"and global_tokens={self.global_tokens}"
                )
            t //= 2
        if self.global_tokens > self.bias_global_tokens:
            raise ValueError("global_tokens must not exceed bias_global_tokens")
        if self.bias_index not in BIAS_INDEX_RULES:
            raise ValueError(f"bias_index must be one of {BIAS_INDEX_RULES}, got {self.bias_index!r}")
        if self.motion_norm not in MOTION_NORMS:
            raise ValueError(f"motion_norm must be one of {MOTION_NORMS}, got {self.motion_norm!r}")
        if len(self.input_scale) != self.in_channels:
            raise ValueError("input_scale needs one factor per input channel")
        if self.num_heads % 8:
            raise ValueError("num_heads must be a multiple of 8 (4 partition types x 2)")
        for c in self.channels:
            if c % 8 or (c // 8) % (self.num_heads // 8) or (c // 4) % (self.num_heads // 4):
                raise ValueError(f"channel width {c} does not split over {self.num_heads} heads")


def paper(t_p: int = 128) -> SkateFormerConfig:
    """The TraMP configuration: 128/256/256/256, 2 blocks per stage; G = T_p / 8 (16 at 128, 8 at 64)."""
    return SkateFormerConfig(t_p=t_p, global_tokens=t_p // 8)


MOTION_NORMS = ("pixels", "iod")
PUPIL_SLOTS = tuple(TRAMP_POINTS_106.index(i) for i in PUPILS_106)
"""The two pupils' places among the 63 points."""
MOTION_SCALES = {"pixels": 1 / 8, "iod": 10.0}
"""Each unit's factor: crop pixels / 8, or inter-pupil distances x 10 (a full smile's corner travel, ~0.1 IOD, near 1)."""

_SCALED_INPUT = (1 / 64, 1 / 64, 1 / 255, 1 / 255, 1 / 255)
"""The reduced sizes train from scratch on little data; pixel offsets and 0-255 colours brought near unit range."""


def small(t_p: int = 64) -> SkateFormerConfig:
    """A CPU-trainable variant: 32/64/64/64, one block per stage, no attention dropout."""
    return SkateFormerConfig(
        embed_dim=32,
        channels=(32, 64, 64, 64),
        depths=(1, 1, 1, 1),
        t_p=t_p,
        global_tokens=t_p // 8,
        bias_global_tokens=max(t_p // 8, 8),
        num_heads=16,
        attn_drop=0.1,
        drop_path=0.1,
        input_scale=_SCALED_INPUT,
        motion_channels=True,
    )


def micro(t_p: int = 16) -> SkateFormerConfig:
    """The smallest useful shape, for tests: two stages of 16 channels, 4-frame windows."""
    return SkateFormerConfig(
        embed_dim=16,
        channels=(16, 16),
        depths=(1, 1),
        t_p=t_p,
        segment_len=4,
        global_tokens=4,
        bias_global_tokens=4,
        num_heads=8,
        attn_drop=0.0,
        drop_path=0.0,
        input_scale=_SCALED_INPUT,
        motion_channels=True,
    )


def partition(x: torch.Tensor, kind: int, cfg: SkateFormerConfig) -> torch.Tensor:
    """[B, C, T, V] -> [windows, tokens, C] for partition type ``kind`` (1-4); tokens are time-major."""
    b, c, t, _ = x.shape
    m, n = cfg.regions, cfg.points_per_region
    if kind in (1, 2):
        x6 = x.reshape(b, c, t // cfg.segment_len, cfg.segment_len, m, n)  # window axis 2, token-time axis 3
    else:
        x6 = x.reshape(b, c, cfg.global_tokens, t // cfg.global_tokens, m, n)  # token-time axis 2, window axis 3
    order = {1: (0, 2, 4, 3, 5, 1), 2: (0, 2, 5, 3, 4, 1), 3: (0, 3, 4, 2, 5, 1), 4: (0, 3, 5, 2, 4, 1)}[kind]
    y = x6.permute(*order)
    return y.reshape(-1, y.shape[3] * y.shape[4], c)


def reverse(windows: torch.Tensor, kind: int, shape: tuple[int, int, int, int], cfg: SkateFormerConfig) -> torch.Tensor:
    """Inverse of :func:`partition`: [windows, tokens, C'] -> [B, C', T, V]."""
    b, _, t, v = shape
    c = windows.shape[-1]
    m, n = cfg.regions, cfg.points_per_region
    if kind in (1, 2):
        outer, inner = t // cfg.segment_len, cfg.segment_len
    else:
        outer, inner = t // cfg.global_tokens, cfg.global_tokens
    sizes = {1: (b, outer, m, inner, n, c), 2: (b, outer, n, inner, m, c), 3: (b, outer, m, inner, n, c)}
    sizes[4] = (b, outer, n, inner, m, c)
    y = windows.reshape(sizes[kind])
    # Undo the permutation: back to [B, C, time-a, time-b, M, N].
    back = {1: (0, 5, 1, 3, 2, 4), 2: (0, 5, 1, 3, 4, 2), 3: (0, 5, 3, 1, 2, 4), 4: (0, 5, 3, 1, 4, 2)}[kind]
    return y.permute(*back).reshape(b, c, t, v)


_ORDERS = {1: (0, 2, 4, 3, 5, 1), 2: (0, 2, 5, 3, 4, 1), 3: (0, 3, 4, 2, 5, 1), 4: (0, 3, 5, 2, 4, 1)}
"""Per partition type, the permutation of [B, C, a, b, M, N] to [B, window, window, token, token, C]."""


def _grid(x: torch.Tensor, kind: int, cfg: SkateFormerConfig, lead: tuple[int, ...]) -> torch.Tensor:
    """[B, T, V, C] (channels last) as [B, a, b, M, N, *lead] with C = prod(lead) and (a, b) the partition's split
    of time."""
    b, t = x.shape[:2]
    a, inner = (
        (t // cfg.segment_len, cfg.segment_len) if kind in (1, 2) else (cfg.global_tokens, t // cfg.global_tokens)
    )
    return x.reshape(b, a, inner, cfg.regions, cfg.points_per_region, *lead)


def attention_windows(x: torch.Tensor, kind: int, heads: int, cfg: SkateFormerConfig) -> torch.Tensor:
    """[B, T, V, 3 * heads * hd] (channels last: q, k, v channels) -> [3, windows, heads, tokens, hd] in one
    transpose.

    The same windows and tokens as :func:`partition` followed by the split into q, k, v and heads. Channels last, the
    head dimension stays contiguous through the transpose (channels first it was the slowest axis to gather)."""
    hd = x.shape[-1] // (3 * heads)
    g = _grid(x, kind, cfg, (3, heads, hd))  # dims: 0 B, 1-4 the grid (a, b, M, N), 5 qkv, 6 head, 7 hd
    o = _ORDERS[kind]
    wa, wb, ta, tb = (o[i] - 1 for i in range(1, 5))
    y = g.permute(5, 0, wa, wb, 6, ta, tb, 7)
    return y.reshape(3, -1, heads, y.shape[5] * y.shape[6], hd)


def attention_unwindow(
    out: torch.Tensor, kind: int, shape: tuple[int, int, int], cfg: SkateFormerConfig
) -> torch.Tensor:
    """Inverse of :func:`attention_windows` for the attention output [windows, heads, tokens, hd] -> [B, T, V, C']
    (channels last), ``shape`` = (B, T, V)."""
    b, t, v = shape
    heads, hd = out.shape[1], out.shape[3]
    sizes = _grid(torch.empty(b, t, v, 1, device="meta"), kind, cfg, (1,)).shape[1:5]  # (a, inner, M, N)
    o = _ORDERS[kind]
    y = out.reshape(b, sizes[o[1] - 2], sizes[o[2] - 2], heads, sizes[o[3] - 2], sizes[o[4] - 2], hd)
    # y dims: 0 B, 1-2 window, 3 head, 4-5 token, 6 hd; back to [B, a, inner, M, N, head, hd]
    where = {o[1]: 1, o[2]: 2, o[3]: 4, o[4]: 5}
    back = y.permute(0, where[2], where[3], where[4], where[5], 3, 6)
    return back.reshape(b, t, v, heads * hd)


def bias_index(kind: int, cfg: SkateFormerConfig) -> torch.Tensor:
    """[tokens, tokens] rows into the flattened bias table of partition type ``kind`` under ``cfg.bias_index``.

    Tokens of a window are time-major: token ``a`` is frame ``a // P1``, landmark ``a % P1`` of the window, with
    ``P0`` frames (L for types 1-2, G for types 3-4) and ``P1`` landmarks (N for types 1 and 3, M for 2 and 4).
    """
    local = kind in (1, 2)
    p0 = cfg.segment_len if local else cfg.global_tokens
    p1 = cfg.points_per_region if kind in (1, 3) else cfg.regions
    reference = cfg.bias_index == "reference"
    # Row offset: L - 1 for types 1-2; G_max - 1 (centred) or G - 1 (reference, its first 2G-1 rows) for types 3-4.
    offset = p0 - 1 if local or reference else cfg.bias_global_tokens - 1
    token = torch.arange(p0 * p1)
    frame = token % p0 if reference and kind in (1, 3) else token // p1  # the reference tiles types 1 and 3
    row = frame[:, None] - frame[None, :] + offset
    if kind in (1, 3):
        return row
    m = cfg.regions
    region = token % p1  # types 2 and 4: a window holds one slot in each of the M regions
    return row * m * m + region[:, None] * m + region[None, :]


class PartitionAttention(nn.Module):
    """Self-attention inside the windows of one partition type, with a relative position bias."""

    def __init__(self, kind: int, channels: int, heads: int, cfg: SkateFormerConfig) -> None:
        super().__init__()
        self.kind = kind
        self.heads = heads
        self.scale = heads**-0.5  # upstream quirk, kept so official weights mean the same
        self.cfg = cfg
        half = cfg.segment_len if kind in (1, 2) else cfg.bias_global_tokens
        rows = 2 * half - 1
        if kind in (1, 3):
            self.bias_table = nn.Parameter(torch.zeros(rows, heads))
        else:
            self.bias_table = nn.Parameter(torch.zeros(rows, cfg.regions, cfg.regions, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer("bias_index", bias_index(kind, cfg).contiguous(), persistent=False)
        self.attn_drop = nn.Dropout(cfg.attn_drop)

    def forward(self, qkv: torch.Tensor) -> torch.Tensor:
        """[windows, tokens, 3 * C] -> [windows, tokens, C]."""
        w, n, c3 = qkv.shape
        parts = qkv.reshape(w, n, 3, self.heads, c3 // (3 * self.heads)).permute(2, 0, 3, 1, 4)
        out = self.attend(parts)
        return out.transpose(1, 2).reshape(w, n, c3 // 3)

    def attend(self, parts: torch.Tensor) -> torch.Tensor:
        """[3, windows, heads, tokens, hd] (q, k, v) -> [windows, heads, tokens, hd]."""
        q, k, v = parts[0], parts[1], parts[2]
        n = q.shape[2]
        logits = (q * self.scale) @ k.transpose(-2, -1)
        index: torch.Tensor = self.bias_index  # type: ignore[assignment]
        bias = self.bias_table.reshape(-1, self.heads)[index.reshape(-1)].reshape(n, n, self.heads)
        attn = torch.softmax(logits + bias.permute(2, 0, 1).unsqueeze(0), dim=-1)
        out: torch.Tensor = self.attn_drop(attn) @ v
        return out


class SkateBlock(nn.Module):
    """One SkateFormer block at width ``dim``, optionally preceded by a stride-2 temporal down-sampling conv."""

    def __init__(self, dim_in: int, dim: int, downsample: bool, drop_path: float, cfg: SkateFormerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.downsample: nn.Sequential | None = None
        if downsample:
            pad = (cfg.kernel_size - 1) // 2
            self.downsample = nn.Sequential(
                nn.Conv2d(dim_in, dim, kernel_size=(cfg.kernel_size, 1), stride=(2, 1), padding=(pad, 0)),
                nn.BatchNorm2d(dim),
            )
        groups = cfg.num_heads // 4
        self.norm_1 = nn.LayerNorm(dim)
        self.mapping = nn.Linear(dim, 2 * dim)
        self.gconv = nn.Parameter(torch.zeros(groups, cfg.num_points, cfg.num_points))
        nn.init.trunc_normal_(self.gconv, std=0.02)
        pad = (cfg.kernel_size - 1) // 2
        self.tconv = nn.Conv2d(dim // 4, dim // 4, kernel_size=(cfg.kernel_size, 1), padding=(pad, 0), groups=groups)
        self.attention = nn.ModuleList(
            [PartitionAttention(kind, dim // 8, cfg.num_heads // 8, cfg) for kind in PARTITION_TYPES]
        )
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(cfg.drop)
        self.drop_path = DropPath(drop_path)
        self.norm_2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(cfg.mlp_ratio * dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, V, C_in] -> [B, T', V, C] (channels last throughout: Linear layers, the partitions and the residuals
        need no transposes; only the two convolutions see [B, C, T, V])."""
        if self.downsample is not None:
            x = self.downsample(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        b, t, v, c = x.shape
        # Linear layers see a [tokens, C] matrix: exported as Gemm, with the bias inside the matrix product
        f = self.mapping(self.norm_1(x.reshape(b * t * v, c))).reshape(b, t, v, 2 * c)
        f_g, f_t, f_attn = torch.split(f, [c // 4, c // 4, 3 * c // 2], dim=-1)
        groups = self.gconv.shape[0]
        cg = c // 4 // groups
        # learned adjacency per group: [B, g, t*cg, V] @ [g, V, V]^T (a batched MatMul rather than an ONNX Einsum)
        g = f_g.reshape(b, t, v, groups, cg).permute(0, 3, 1, 4, 2).reshape(b, groups, t * cg, v)
        g = (g @ self.gconv.transpose(1, 2).unsqueeze(0)).reshape(b, groups, t, cg, v).permute(0, 2, 4, 1, 3)
        outs = [g.reshape(b, t, v, c // 4), self.tconv(f_t.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)]
        for kind, part, module in zip(PARTITION_TYPES, torch.chunk(f_attn, 4, dim=-1), self.attention, strict=True):
            attn: PartitionAttention = module  # type: ignore[assignment]
            windows = attention_windows(part, kind, attn.heads, self.cfg)
            outs.append(attention_unwindow(attn.attend(windows), kind, (b, t, v), self.cfg))
        mixed = self.proj_drop(self.proj(torch.cat(outs, dim=-1).reshape(b * t * v, c))).reshape(b, t, v, c)
        y = x + self.drop_path(mixed)
        out: torch.Tensor = y + self.drop_path(self.mlp(self.norm_2(y.reshape(b * t * v, c))).reshape(b, t, v, c))
        return out


class SkateStage(nn.Module):
    def __init__(self, blocks: list[SkateBlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def deformation(xy: torch.Tensor) -> torch.Tensor:
    """[B, T, V, 2] landmark positions -> each point's offset from its own mean position over the window, after the
    frame's mean over all points (the whole face's translation: head motion, framing) is removed.

    Movement is what carries severity, but in the raw positions a smile's few pixels of corner travel sit on top of
    each face's own shape (tens of pixels between identities) and of head motion; a model trained on a hundred clips
    fits those instead (measured on the phantom: see the README's training section). These channels put the movement
    itself at the input; the raw positions stay beside them for static signs (lips parted at rest).
    """
    local = xy - xy.mean(dim=2, keepdim=True)
    return local - local.mean(dim=1, keepdim=True)


def inter_pupil(xy: torch.Tensor) -> torch.Tensor:
    """[B, T, V, 2] landmark positions -> [B, 1, 1, 1] the window's mean distance between the pupils."""
    gap = xy[:, :, PUPIL_SLOTS[0]] - xy[:, :, PUPIL_SLOTS[1]]
    iod = torch.sqrt((gap * gap).sum(dim=-1)).mean(dim=1)  # [B]
    return iod.clamp_min(1e-3).view(-1, 1, 1, 1)


def motion_input(xy: torch.Tensor, cfg: SkateFormerConfig) -> torch.Tensor:
    """The two deformation channels as the stem sees them: in crop pixels or in inter-pupil distances
    (``cfg.motion_norm``), times ``cfg.motion_scale``."""
    moved = deformation(xy)
    if cfg.motion_norm == "iod":
        moved = moved / inter_pupil(xy)
    return moved * cfg.motion_scale


class SkateFormer(nn.Module):
    """The trajectory encoder. ``forward`` returns temporal tokens; :meth:`pooled` the clip feature."""

    def __init__(self, cfg: SkateFormerConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        c_in = cfg.stem_channels
        self.stem = nn.Sequential(
            nn.Conv2d(c_in, 2 * c_in, 1),
            nn.GELU(),
            nn.Conv2d(2 * c_in, 3 * c_in, 1),
            nn.GELU(),
            nn.Conv2d(3 * c_in, cfg.embed_dim, 1),
        )
        self.joint_embedding = nn.Parameter(torch.zeros(cfg.embed_dim, cfg.num_points))
        nn.init.trunc_normal_(self.joint_embedding, std=0.02)
        rates = torch.linspace(0.0, cfg.drop_path, sum(cfg.depths)).tolist()
        stages: list[SkateStage] = []
        k = 0
        prev = cfg.embed_dim
        for s, (depth, width) in enumerate(zip(cfg.depths, cfg.channels, strict=True)):
            blocks = []
            for i in range(depth):
                blocks.append(SkateBlock(prev if i == 0 else width, width, s > 0 and i == 0, rates[k], cfg))
                k += 1
            stages.append(SkateStage(blocks))
            prev = width
        self.stages = nn.ModuleList(stages)
        half = torch.arange(0, cfg.embed_dim, 2, dtype=torch.float32)
        self.register_buffer("div_term", torch.exp(half * -(math.log(10000.0) / cfg.embed_dim)), persistent=False)

    @property
    def out_dim(self) -> int:
        return self.cfg.channels[-1]

    def temporal_embedding(self, index_t: torch.Tensor) -> torch.Tensor:
        """Sinusoidal encoding of ``index_t`` [B, T] -> [B, T, embed_dim] (sin on even, cos on odd channels)."""
        div: torch.Tensor = self.div_term  # type: ignore[assignment]
        angle = index_t.unsqueeze(-1).float() * div
        return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(-2)

    def forward(self, traj: torch.Tensor, index_t: torch.Tensor) -> torch.Tensor:
        """[B, T, V, C] trajectories, [B, T] index_t -> [B, T_out, C_last] tokens (mean over landmarks)."""
        scale = torch.tensor(self.cfg.input_scale, dtype=traj.dtype, device=traj.device)
        inputs = traj * scale
        if self.cfg.motion_channels:
            inputs = torch.cat([inputs, motion_input(traj[..., :2], self.cfg)], dim=-1)
        b, t, v, _ = inputs.shape
        # the 1x1 convolutions applied channels last, as the Linear maps they are, on a [positions, C] matrix: exported
        # as Gemm with the bias inside, each GELU then on a flat tensor (on [B, T, V, C] the exporter wrote MatMul +
        # Add, which ONNX Runtime fused into a BiasGelu that took 2-5 ns per element at 14 or 21 channels)
        x = inputs.reshape(b * t * v, -1)
        for layer in self.stem:
            x = F.linear(x, layer.weight.flatten(1), layer.bias) if isinstance(layer, nn.Conv2d) else layer(x)
        x = x.reshape(b, t, v, -1)
        te = self.temporal_embedding(index_t)
        # te[b, t, c] * J[c, v] as a broadcast product (one factor pair, no sum: exactly the einsum "btc,cv->btvc",
        # which ONNX Runtime ran as a slow Einsum kernel)
        x = x + te.unsqueeze(2) * self.joint_embedding.t()  # [B, T, V, E]
        for stage in self.stages:
            x = stage(x)
        out: torch.Tensor = x.mean(dim=2)
        return out

    def pooled(self, traj: torch.Tensor, index_t: torch.Tensor) -> torch.Tensor:
        """The paper's clip feature: mean over time and landmarks -> [B, C_last]."""
        return self.forward(traj, index_t).mean(dim=1)
