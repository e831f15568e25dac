"""TraMP-Former: trajectory (SkateFormer) and RGB (Former-DFER) streams fused by TraMP blocks (models.md §1).

One regressor per expression. Inputs: RGB frames [B, T_f, 3, H, W] (clean layout), trajectories [B, T_p, 63, 5] and
``index_t`` [B, T_p]. Output: the score [B], unbounded, on the label scale.

What the reference does differently, and what we do:

* Fusion (models.md §0 item 6), ``fusion`` in the config:

  - ``"tokens"`` (ours, the default): the reference pools each stream to a single token before fusing, so its
    cross-attention has one key, its softmax is identically 1, W_q and W_k get no gradient and "RGB as query"
    reduces to adding a projected trajectory vector. Here the RGB stream keeps one token per subclip (the queries)
    and the trajectory stream keeps its temporal tokens from SkateFormer's last stage (the keys and values), so the
    attention really selects trajectory moments per RGB subclip. Only the RGB tokens are updated (RGB as query); the
    head reads their mean.
  - ``"reference"``: exactly the reference's computation (one token per side: the RGB subclip features projected
    and averaged, the trajectory feature averaged over time and landmarks), for reproducing the paper's numbers
    (``-c reference`` in the trainer; see the README).

* RGB layout (item 5): see :mod:`trainer.models.formerdfer`; frames go in as [B, T, 3, H, W].
* The RGB stream can be left out (``use_rgb = False``, the trainer's ``model.rgb = false``): :class:`TrampTrajectory`
  keeps the trajectory stream, the fusion blocks and the head, and one learned query token takes the place of the
  RGB subclip tokens, so the blocks pool the trajectory tokens by attention. Its inputs are ``trajectory`` and
  ``index_t`` only; it has no per-frame encoder (no ``frame`` graph when exported). :func:`build` picks the class.
* Training recipe (item 7) lives in the configs: the paper's SGD recipe and the shipped Adam recipe are both there,
  BMC gets (prediction, label) in the paper's order, and the best epoch is picked on a validation split.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from common.features import TIME_INDEX_RULES
from trainer.models import formerdfer, skateformer
from trainer.models.base import config_from_dict
from trainer.models.formerdfer import FormerDFER, FormerDFERConfig
from trainer.models.layers import CrossAttention
from trainer.models.skateformer import SkateFormer, SkateFormerConfig

FUSIONS = ("tokens", "reference")
# The head's hidden activation. ReLU is the reference's and every size's default. At the micro size the head is so
# narrow (16 -> 8 -> 4) that the fused features, nearly the same for every clip early on, can switch all 4 last hidden
# units off together, and then nothing below the head gets a gradient again (a constant output for the rest of the
# run: the trainer's dead-head check restarts such a run). GELU keeps a gradient there; it is not the micro default
# because on the 16-subject test set it ranked test clips no better than ReLU over 4 seeds (README).
HEAD_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU}


@dataclasses.dataclass(frozen=True)
class TrampFormerConfig:
    """The whole model; travels inside checkpoints and manifests so the model rebuilds from its file alone."""

    skate: SkateFormerConfig = dataclasses.field(default_factory=skateformer.paper)
    rgb: FormerDFERConfig = dataclasses.field(default_factory=formerdfer.paper)
    rgb_frames: int = 80
    dim: int = 256
    fusion_blocks: int = 3
    fusion_heads: int = 8
    fusion_ffn: int = 1024
    fusion: str = "tokens"  # tokens (ours) | reference (one token per side, as the reference code)
    # index_t rule (common.features.TIME_INDEX_RULES) the trajectory input is built with; travels to the manifest
    time_index: str = "window"
    # False: no RGB stream (trajectory only, TrampTrajectory); ``rgb`` and ``rgb_frames`` then describe nothing it reads
    use_rgb: bool = True
    # the head's hidden activation (HEAD_ACTIVATIONS); it has no weights, so key maps are the same for both
    head_activation: str = "relu"

    def validate(self) -> None:
        self.skate.validate()
        self.rgb.validate()
        if self.rgb_frames % self.rgb.subclip_len:
            raise ValueError(f"rgb_frames={self.rgb_frames} must be a multiple of subclip_len={self.rgb.subclip_len}")
        if self.dim % self.fusion_heads or self.dim % 4:
            raise ValueError("dim must be divisible by fusion_heads and by 4")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.time_index not in TIME_INDEX_RULES:
            raise ValueError(f"time_index must be one of {TIME_INDEX_RULES}, got {self.time_index!r}")
        if self.head_activation not in HEAD_ACTIVATIONS:
            raise ValueError(f"head_activation must be one of {sorted(HEAD_ACTIVATIONS)}, got {self.head_activation!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrampFormerConfig:
        return config_from_dict(cls, raw)


def paper(t_p: int = 128) -> TrampFormerConfig:
    """The published shape: T_p 128 (64 for rest), 80 RGB frames at 224, d=256, 3 blocks, 8 heads, FFN 1024."""
    return TrampFormerConfig(skate=skateformer.paper(t_p), rgb=formerdfer.paper())


def small(t_p: int = 64) -> TrampFormerConfig:
    """Trains on 2 CPU cores: T_p 64, 16 RGB frames at 64x64, d=64."""
    return TrampFormerConfig(
        skate=skateformer.small(t_p), rgb=formerdfer.small(), rgb_frames=16, dim=64, fusion_heads=4, fusion_ffn=256
    )


def micro(t_p: int = 16) -> TrampFormerConfig:
    """For tests: T_p 16, 8 RGB frames at 32x32, d=16."""
    return TrampFormerConfig(
        skate=skateformer.micro(t_p), rgb=formerdfer.micro(), rgb_frames=8, dim=16, fusion_heads=2, fusion_ffn=32
    )


SIZES = {"paper": paper, "small": small, "micro": micro}


class TrampBlock(nn.Module):
    """RGB tokens attend to trajectory tokens; only the RGB tokens are updated (pre-norm, residual, FFN).

    One LayerNorm serves both keys and values, as in the reference code (the paper's equations show two)."""

    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, heads)
        self.norm_2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))

    def forward(self, rgb: torch.Tensor, traj: torch.Tensor) -> torch.Tensor:
        rgb = rgb + self.attn(self.norm_q(rgb), self.norm_kv(traj))
        out: torch.Tensor = rgb + self.ffn(self.norm_2(rgb))
        return out


class _TrampCore(nn.Module, abc.ABC):
    """The trajectory stream, the fusion blocks and the head: what both TraMP-Former variants share. The queries of
    the fusion (RGB subclip tokens, or a learned token) come from :meth:`_build_queries`, called where the RGB
    encoder was always built, so a seeded model initialises exactly as before the variants existed."""

    def __init__(self, cfg: TrampFormerConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.traj_encoder = SkateFormer(cfg.skate)
        self._build_queries(cfg)
        self.traj_proj: nn.Module = (
            nn.Identity() if self.traj_encoder.out_dim == cfg.dim else nn.Linear(self.traj_encoder.out_dim, cfg.dim)
        )
        self.fusion = nn.ModuleList(
            [TrampBlock(cfg.dim, cfg.fusion_heads, cfg.fusion_ffn) for _ in range(cfg.fusion_blocks)]
        )
        d, act = cfg.dim, HEAD_ACTIVATIONS[cfg.head_activation]
        self.head = nn.Sequential(nn.Linear(d, d // 2), act(), nn.Linear(d // 2, d // 4), act(), nn.Linear(d // 4, 1))

    @abc.abstractmethod
    def _build_queries(self, cfg: TrampFormerConfig) -> None:
        """Create the modules or parameters the fusion's queries come from."""

    def _fuse(self, queries: torch.Tensor, traj: torch.Tensor, index_t: torch.Tensor) -> torch.Tensor:
        """Score [B] from the fusion's queries [B, Q, dim], trajectories [B, T_p, 63, 5] and index_t [B, T_p]."""
        tokens = self.traj_proj(self.traj_encoder(traj, index_t))
        if self.cfg.fusion == "reference":  # one token per side (mean over subclips; over time and landmarks)
            queries, tokens = queries.mean(dim=1, keepdim=True), tokens.mean(dim=1, keepdim=True)
        for block in self.fusion:
            queries = block(queries, tokens)
        out: torch.Tensor = self.head(queries.mean(dim=1)).squeeze(-1)
        return out


class TrampFormer(_TrampCore):
    """The fused regressor. See the module docstring for inputs and what differs from the reference."""

    FAMILY: ClassVar[str] = "tramp_former"
    INPUTS: ClassVar[tuple[str, ...]] = ("frames", "trajectory", "index_t")
    WINDOW_INPUTS: ClassVar[tuple[str, ...]] = ("frame_features", "trajectory", "index_t")

    def __init__(self, cfg: TrampFormerConfig) -> None:
        if not cfg.use_rgb:
            raise ValueError("use_rgb = False is the trajectory-only model: build it with trampformer.build")
        super().__init__(cfg)

    def _build_queries(self, cfg: TrampFormerConfig) -> None:
        self.rgb_encoder = FormerDFER(cfg.rgb)
        self.rgb_proj = nn.Linear(self.rgb_encoder.out_dim, cfg.dim)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] normalised frames -> [N, D_rgb]: the per-frame part a live scorer caches."""
        return self.rgb_encoder.encode_frames(frames)

    def forward_features(self, frame_features: torch.Tensor, traj: torch.Tensor, index_t: torch.Tensor) -> torch.Tensor:
        """Score from cached frame features [B, T_f, D_rgb], trajectories [B, T_p, 63, 5] and index_t [B, T_p]."""
        return self._fuse(self.rgb_proj(self.rgb_encoder.encode_subclips(frame_features)), traj, index_t)

    def forward(self, frames: torch.Tensor, traj: torch.Tensor, index_t: torch.Tensor) -> torch.Tensor:
        """Score from frames [B, T_f, 3, H, W], trajectories [B, T_p, 63, 5] and index_t [B, T_p] -> [B]."""
        b, t = frames.shape[:2]
        feats = self.encode_frames(frames.reshape(b * t, *frames.shape[2:])).reshape(b, t, -1)
        return self.forward_features(feats, traj, index_t)


class TrampTrajectory(_TrampCore):
    """TraMP-Former without its RGB stream (``use_rgb = False``): one learned query token attends to the trajectory
    tokens through the same fusion blocks. Inputs: trajectories [B, T_p, 63, 5] and index_t [B, T_p]; no frames."""

    FAMILY: ClassVar[str] = "tramp_former"
    INPUTS: ClassVar[tuple[str, ...]] = ("trajectory", "index_t")
    WINDOW_INPUTS: ClassVar[tuple[str, ...]] = ("trajectory", "index_t")

    def __init__(self, cfg: TrampFormerConfig) -> None:
        if cfg.use_rgb:
            raise ValueError("TrampTrajectory is the model without RGB: its config needs use_rgb = False")
        super().__init__(cfg)

    def _build_queries(self, cfg: TrampFormerConfig) -> None:
        self.query = nn.Parameter(torch.randn(1, 1, cfg.dim))

    def forward_features(self, traj: torch.Tensor, index_t: torch.Tensor) -> torch.Tensor:
        """The window graph: the same as :meth:`forward` (there are no frame features to cache)."""
        return self._fuse(self.query.expand(traj.shape[0], -1, -1), traj, index_t)

    def forward(self, traj: torch.Tensor, index_t: torch.Tensor) -> torch.Tensor:
        """Score from trajectories [B, T_p, 63, 5] and index_t [B, T_p] -> [B]."""
        return self.forward_features(traj, index_t)


def build(cfg: TrampFormerConfig) -> nn.Module:
    """The model a config describes: :class:`TrampFormer`, or :class:`TrampTrajectory` when ``use_rgb`` is False."""
    return TrampFormer(cfg) if cfg.use_rgb else TrampTrajectory(cfg)
