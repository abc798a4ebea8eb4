"""A noise-aware classifier p(y | x_t, t) for classifier guidance (Dhariwal & Nichol 2021, Sec. 4).

For images it is the U-Net's down-sampling half (time-conditioned residual blocks) followed by
global average pooling and a linear layer to the class logits, as in Dhariwal & Nichol's classifier;
for points [B, D] it is a time-conditioned MLP. Train it with `scoresde.losses.ClassifierLoss`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .layers import Downsample, ResBlock, group_norm, sinusoidal_embedding


class NoisyClassifier(nn.Module):
    """logits(x_t, t) [B, num_classes] for x_t of per-sample shape `shape`: (D,) points or (C, H, W) images."""

    def __init__(self,
                 shape=(1, 28, 28),            # per-sample data shape
                 num_classes: int = 10,        # classes (the output size)
                 ch: int = 32,                 # images: base channels; points: hidden width / 4
                 ch_mult=(1, 2, 2),            # images: channel multiplier per resolution level
                 num_res_blocks: int = 1,      # images: residual blocks per level; points: hidden layers
                 dropout: float = 0.0,
                 time_scale: float = 1000.0,   # t is multiplied by this before the sinusoidal embedding
                 ):
        super().__init__()
        shape = tuple(shape)
        if len(shape) not in (1, 3):
            raise ValueError(f"shape must be (D,) or (C, H, W), got {shape}")
        self.shape, self.num_classes, self.ch, self.time_scale = shape, num_classes, ch, time_scale
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if len(shape) == 1:
            width = 4 * ch
            self.layers = nn.ModuleList([nn.Linear(shape[0] if i == 0 else width, width) for i in range(num_res_blocks + 1)])
            self.emb_proj = nn.ModuleList([nn.Linear(emb_dim, width) for _ in self.layers])
            self.head = nn.Linear(width, num_classes)
            return
        self.conv_in = nn.Conv2d(shape[0], ch, 3, padding=1)
        blocks, cur = [], ch
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(cur, ch * mult, emb_dim, dropout))
                cur = ch * mult
            if level != len(ch_mult) - 1:
                blocks.append(Downsample(cur))
        self.blocks = nn.ModuleList(blocks)
        self.norm_out, self.head = group_norm(cur), nn.Linear(cur, num_classes)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(sinusoidal_embedding(t * self.time_scale, self.ch).to(x.dtype))
        if len(self.shape) == 1:
            h = x
            for layer, proj in zip(self.layers, self.emb_proj):
                h = F.silu(layer(h) + proj(emb))
            return self.head(h)
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h, emb) if isinstance(block, ResBlock) else block(h)
        return self.head(F.silu(self.norm_out(h)).mean((2, 3)))
