"""Linear resizing operators for image batches [B, C, H, W]: the down-sampling D of super-resolution, its
up-sampling U, and ILVR's low-pass filter φ_N = U D (Choi et al. 2021, Eq. 6).

D averages each N×N block, and U repeats each pixel into an N×N block (nearest neighbour). Then U = N² Dᵀ, and
φ_N = U D replaces every block by its mean: an orthogonal projection (φ_N² = φ_N = φ_Nᵀ), so "the low frequencies
of x" and "the rest" are orthogonal coordinates, and D x = D y exactly when φ_N(x) = φ_N(y).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._utils import ArgumentTypeError, check_positive_int, describe


def _check_image(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a tensor of images [B, C, H, W], got {describe(x)}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be a batch of images [B, C, H, W], got {describe(x)}")
    return x


def downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """D x: the mean of every factor × factor block; H and W must be multiples of factor."""
    x, factor = _check_image(x, "x"), check_positive_int(factor, "factor")
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise ValueError(f"factor must divide the image size: got factor={factor} for images of "
                         f"{x.shape[-2]}x{x.shape[-1]}")
    return x if factor == 1 else F.avg_pool2d(x, factor)


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """U x: every pixel repeated into a factor × factor block (nearest neighbour); U = factor² Dᵀ."""
    x, factor = _check_image(x, "x"), check_positive_int(factor, "factor")
    return x if factor == 1 else x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def low_pass(x: torch.Tensor, factor: int) -> torch.Tensor:
    """φ_N(x) = U D x: each factor × factor block replaced by its mean (ILVR's low-pass filter, an orthogonal
    projection)."""
    return upsample(downsample(x, factor), factor)
