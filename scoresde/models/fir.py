"""FIR resampling of images (StyleGAN2's upfirdn2d; Karras et al. 2020, used by NCSN++), in plain PyTorch.

upfirdn2d up-samples by inserting zeros, pads, convolves every channel with a 2-D FIR kernel and keeps every
`down`-th pixel. With the kernel (1, 3, 3, 1) ⊗ (1, 3, 3, 1) / 64 it is the anti-aliased ×2 up- and down-sampling
of NCSN++ and DDPM++ (`fir=True`). It runs on any device: no compiled extension.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def fir_kernel(taps, gain: float = 1.0) -> torch.Tensor:
    """A 2-D kernel from 1-D taps (their outer product) or 2-D taps, normalised to sum to `gain`; float32."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.ndim == 1:
        k = torch.outer(k, k)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"FIR taps must be 1-D or square 2-D, got shape {tuple(k.shape)}")
    return k * (gain / k.sum())


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad=(0, 0)) -> torch.Tensor:
    """Zero-insertion up-sampling by `up`, padding by pad = (before, after) on both axes (negative: crop), true 2-D
    convolution of each channel with `kernel` over the valid region, then every `down`-th pixel. x: [B, C, H, W]."""
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h, up, w, up)
        z[:, :, :, 0, :, 0] = x
        x = z.reshape(b, c, h * up, w * up)
    before, after = pad
    x = F.pad(x, [max(before, 0), max(after, 0)] * 2)
    x = x[..., max(-before, 0):x.shape[-2] - max(-after, 0), max(-before, 0):x.shape[-1] - max(-after, 0)]
    k = kernel.to(x).flip([0, 1])  # conv2d correlates: a flipped kernel makes it a convolution
    x = F.conv2d(x.reshape(b * c, 1, *x.shape[-2:]), k[None, None])
    return x.reshape(b, c, *x.shape[-2:])[..., ::down, ::down]


def upsample_2d(x: torch.Tensor, kernel: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """×factor up-sampling through the FIR kernel (normalised to sum 1), scaled by factor² to keep constants."""
    p = kernel.shape[0] - factor
    return upfirdn2d(x, kernel * factor**2, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def downsample_2d(x: torch.Tensor, kernel: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """÷factor down-sampling through the FIR kernel (normalised to sum 1)."""
    p = kernel.shape[0] - factor
    return upfirdn2d(x, kernel, down=factor, pad=((p + 1) // 2, p // 2))


def conv_downsample_2d(x: torch.Tensor, weight: torch.Tensor, kernel: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """FIR low-pass, then a strided convolution with `weight` [out, in, k, k]: one padding for both."""
    p = kernel.shape[0] - factor + weight.shape[-1] - 1
    return F.conv2d(upfirdn2d(x, kernel, pad=((p + 1) // 2, p // 2)), weight, stride=factor)


def upsample_conv_2d(x: torch.Tensor, weight: torch.Tensor, kernel: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """A transposed convolution with stride `factor` by `weight` [out, in, k, k] (spatially flipped, so it is the
    adjoint of a convolution by it), then the FIR kernel times factor²: one padding for both."""
    k = weight.shape[-1]
    p = kernel.shape[0] - factor - (k - 1)
    x = F.conv_transpose2d(x, weight.flip([2, 3]).transpose(0, 1), stride=factor)
    return upfirdn2d(x, kernel * factor**2, pad=((p + 1) // 2 + factor - 1, p // 2 + 1))


def naive_upsample_2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour ×factor up-sampling."""
    return x.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


def naive_downsample_2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Mean over factor × factor blocks."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // factor, factor, w // factor, factor).mean((3, 5))
