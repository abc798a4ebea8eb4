"""Building blocks of the time-conditioned U-Net (Ho et al. 2020, Appendix B; Song et al. 2021, DDPM++)."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer positional embedding of (possibly fractional) positions t [B] (Vaswani et al. 2017; DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


class GaussianFourierProjection(nn.Module):
    """Random Fourier features [sin(2πWt), cos(2πWt)], W ~ N(0, scale²), fixed (Tancik et al. 2020; NCSN++)."""

    def __init__(self, dim: int, scale: float = 16.0):
        super().__init__()
        self.register_buffer("W", torch.randn(dim // 2) * scale)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        proj = 2 * math.pi * t.float()[:, None] * self.W[None]
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=1)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (DDPM) when there are at least 4 channels per group, else fewer groups of 4 or more.

    A group of one channel would subtract each channel's own mean, and with it the per-channel time (and
    label) embedding that ResBlock adds just before its second norm: a U-Net with 32 or fewer channels
    would then ignore t and y entirely. For 128 or more channels this is DDPM's GroupNorm(32).
    """
    return nn.GroupNorm(num_groups=math.gcd(32, max(channels // 4, 1)), num_channels=channels, eps=1e-6)


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv, plus the time embedding, GroupNorm–SiLU–dropout–conv, and a skip connection."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0, skip_rescale: bool = False):
        super().__init__()
        self.norm1, self.conv1 = group_norm(in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2, self.dropout = group_norm(out_ch), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.skip_rescale = skip_rescale  # divide the sum by √2 (DDPM++)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        out = self.skip(x) + h
        return out / math.sqrt(2.0) if self.skip_rescale else out


class AttnBlock(nn.Module):
    """Single-head self-attention over spatial positions with a residual connection."""

    def __init__(self, ch: int, skip_rescale: bool = False):
        super().__init__()
        self.norm, self.qkv, self.proj = group_norm(ch), nn.Conv2d(ch, 3 * ch, 1), nn.Conv2d(ch, ch, 1)
        self.skip_rescale = skip_rescale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        out = x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))
        return out / math.sqrt(2.0) if self.skip_rescale else out


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
