"""Time-conditioned U-Net in the style of DDPM (Ho et al. 2020) and DDPM++ (Song et al. 2021).

The defaults are DDPM's CIFAR-10 model: 35.7M parameters.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .layers import AttnBlock, Downsample, GaussianFourierProjection, ResBlock, Upsample, group_norm, sinusoidal_embedding

EMBEDDINGS = ("sinusoidal", "fourier")


class UNet(nn.Module):
    """ε-, score-, x₀- or v-network f(x, t) for images [B, C, H, W]; the output has the input's shape (or
    `out_channels` channels, e.g. logits for a categorical model)."""

    checkpoint_blocks = (ResBlock, AttnBlock)  # what activation checkpointing recomputes (models.activation_checkpointing)

    def __init__(self,
                 in_channels: int = 3,            # image channels
                 resolution: int = 32,            # input height = width
                 ch: int = 128,                   # base channel count
                 ch_mult=(1, 2, 2, 2),            # channel multiplier per resolution level
                 num_res_blocks: int = 2,         # residual blocks per level
                 attn_resolutions=(16,),          # resolutions that get self-attention
                 dropout: float = 0.1,            # dropout inside residual blocks
                 embedding: str = "sinusoidal",   # time embedding: "sinusoidal" or "fourier"
                 time_scale: float = 1.0,         # t is multiplied by this before embedding (1000 for t in [0, 1])
                 fourier_scale: float = 16.0,     # std of the Fourier frequencies
                 skip_rescale: bool = False,      # divide residual sums by √2 (DDPM++)
                 num_classes: int | None = None,  # class-conditional with this many classes (+1 "no label")
                 out_channels: int | None = None,  # output channels (None: in_channels, an output shaped like x)
                 cond_channels: int = 0,           # > 0: image-conditional (SR3): y [B, cond_channels, H, W] is
                                                   # concatenated to x at the input
                 ):
        super().__init__()
        if embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {list(EMBEDDINGS)}, got {embedding!r}")
        if num_classes and cond_channels:
            raise ValueError(f"a U-Net conditions on class labels (num_classes={num_classes}) or on images "
                             f"(cond_channels={cond_channels}), not both")
        if resolution % 2 ** (len(ch_mult) - 1):
            raise ValueError(f"resolution {resolution} must be divisible by 2^(len(ch_mult) - 1) = {2 ** (len(ch_mult) - 1)}")
        self.ch, self.time_scale, self.num_classes, self.embedding = ch, time_scale, num_classes, embedding
        self.cond_channels = cond_channels
        self.data_shape = (in_channels, resolution, resolution)  # what x [B, C, H, W] must look like per sample
        emb_dim = 4 * ch
        self.fourier = GaussianFourierProjection(ch, fourier_scale) if embedding == "fourier" else None
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None

        self.conv_in = nn.Conv2d(in_channels + cond_channels, ch, 3, padding=1)
        self.down, chans, cur, res = nn.ModuleList(), [ch], ch, resolution
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                self.down.append(self._block(cur, ch * mult, emb_dim, dropout, skip_rescale, res in attn_resolutions))
                cur = ch * mult
                chans.append(cur)
            if level != len(ch_mult) - 1:
                self.down.append(Downsample(cur))
                chans.append(cur)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(cur, cur, emb_dim, dropout, skip_rescale), AttnBlock(cur, skip_rescale),
                                  ResBlock(cur, cur, emb_dim, dropout, skip_rescale)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(ch_mult))):
            for _ in range(num_res_blocks + 1):
                self.up.append(self._block(cur + chans.pop(), ch * mult, emb_dim, dropout, skip_rescale,
                                           res in attn_resolutions))
                cur = ch * mult
            if level != 0:
                self.up.append(Upsample(cur))
                res *= 2
        self.norm_out, self.conv_out = group_norm(cur), nn.Conv2d(cur, out_channels or in_channels, 3, padding=1)

    @staticmethod
    def _block(in_ch, out_ch, emb_dim, dropout, skip_rescale, attn):
        res = ResBlock(in_ch, out_ch, emb_dim, dropout, skip_rescale)
        return nn.ModuleList([res, AttnBlock(out_ch, skip_rescale)]) if attn else nn.ModuleList([res])

    def embed(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Time embedding (+ label embedding; y = None means the "no label" class)."""
        t = t * self.time_scale
        emb = self.time_mlp(self.fourier(t) if self.fourier is not None else sinusoidal_embedding(t, self.ch))
        if self.label_emb is not None:
            if y is None:
                y = torch.full((t.shape[0],), self.num_classes, device=t.device, dtype=torch.long)
            emb = emb + self.label_emb(y)
        return emb

    @staticmethod
    def _run_block(block, h, emb):
        for layer in block:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond_channels:  # SR3: y is an image, read next to x
            if y is None or y.shape != (x.shape[0], self.cond_channels, *x.shape[2:]):
                raise ValueError(f"this U-Net is image-conditional: y must be images [B, {self.cond_channels}, "
                                 f"{x.shape[-2]}, {x.shape[-1]}] for x {tuple(x.shape)}, got "
                                 f"{None if y is None else tuple(y.shape)}")
            x, y = torch.cat([x, y.to(x.dtype)], 1), None
        emb = self.embed(t, y)
        hs = [self.conv_in(x)]
        for block in self.down:
            hs.append(block(hs[-1]) if isinstance(block, Downsample) else self._run_block(block, hs[-1], emb))
        h = self._run_block(self.mid, hs[-1], emb)
        for block in self.up:
            h = block(h) if isinstance(block, Upsample) else self._run_block(block, torch.cat([h, hs.pop()], 1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))
