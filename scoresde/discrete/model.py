"""A network for categorical images: one-hot states in, logits of p̃_θ(x̃₀ | x_t) out, through the U-Net."""
from __future__ import annotations

import torch
from torch import nn

from .._utils import check_positive_int
from ..models.unet import UNet


class CategoricalUNet(nn.Module):
    """f(x_t, t) → logits [B, C, H, W, K₀] for integer images x_t [B, C, H, W] with values in 0..K−1 (Austin et al.
    2021 use a U-Net the same way): each channel enters as K one-hot planes, each channel leaves as K₀ logit planes."""

    def __init__(self,
                 num_states: int,        # K, states of x_t (data states plus [MASK] for absorbing transitions)
                 num_data_states: int,   # K₀, states of x₀: the logits per pixel
                 in_channels: int = 1,   # image channels C
                 **unet,                 # the U-Net's keyword arguments (resolution, ch, ch_mult, ...)
                 ):
        super().__init__()
        self.K = check_positive_int(num_states, "num_states", minimum=2)
        self.K0 = check_positive_int(num_data_states, "num_data_states", minimum=2)
        self.C = check_positive_int(in_channels, "in_channels")
        self.unet = UNet(in_channels=self.C * self.K, out_channels=self.C * self.K0, **unet)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        B, C, H, W = x.shape
        h = nn.functional.one_hot(x, self.K).permute(0, 1, 4, 2, 3).reshape(B, C * self.K, H, W)
        out = self.unet(h.to(self.unet.conv_in.weight.dtype), t, y)
        return out.reshape(B, C, self.K0, H, W).permute(0, 1, 3, 4, 2)
