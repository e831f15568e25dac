"""Small building blocks shared by the models: tanh-GELU, pre-norm transformer layers, drop-path, cross-attention."""

from __future__ import annotations

import math

import torch
from torch import nn


class TanhGELU(nn.Module):
    """GELU with the tanh approximation (what Former-DFER writes by hand); exports as element-wise ops."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


class Mlp(nn.Module):
    """Linear -> activation -> Linear."""

    def __init__(self, dim: int, hidden: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(self.act(self.fc1(x)))
        return out


class SelfAttention(nn.Module):
    """Multi-head self-attention with a bias-free qkv projection and an output projection."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.proj = nn.Linear(heads * head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        out: torch.Tensor = self.proj((attn @ v).transpose(1, 2).reshape(b, n, self.heads * self.head_dim))
        return out


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: x + Attn(LN(x)), then x + MLP(LN(x)) with tanh-GELU."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_dim, act=TanhGELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out


class Transformer(nn.Module):
    """A stack of :class:`TransformerLayer`."""

    def __init__(self, dim: int, depth: int, heads: int, head_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([TransformerLayer(dim, heads, head_dim, mlp_dim) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class CrossAttention(nn.Module):
    """Multi-head attention of queries from one token set over keys/values from another: separate bias-free q, k, v
    projections (the QAFE-Net and TraMP-Former reference layout), scale head_dim**-0.5, an output projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} does not split over {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """[B, N, D] queries attend over [B, M, D] context -> [B, N, D]."""
        b, n, d = query.shape
        m, hd = context.shape[1], d // self.heads
        q = self.q(query).reshape(b, n, self.heads, hd).transpose(1, 2)
        k = self.k(context).reshape(b, m, self.heads, hd).transpose(1, 2)
        v = self.v(context).reshape(b, m, self.heads, hd).transpose(1, 2)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * hd**-0.5, dim=-1)
        out: torch.Tensor = self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return out
