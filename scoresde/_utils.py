"""Small helpers shared by every module: broadcasting, validation, progress bars."""
from __future__ import annotations

from typing import Iterable, Sequence

import torch


def append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append trailing singleton dims so a per-sample tensor [B] broadcasts against [B, ...]."""
    extra = ndim - v.ndim
    if extra < 0:
        raise ValueError(f"append_dims: tensor has {v.ndim} dims, more than the target {ndim}")
    return v.reshape(*v.shape, *([1] * extra))


def choice_error(arg: str, got, valid: Iterable[str]) -> ValueError:
    """A ValueError naming the argument, what it got and the valid choices."""
    return ValueError(f"{arg} must be one of {sorted(valid)}, got {got!r}")


def check_time(t: torch.Tensor, T: float, batch: int | None = None, name: str = "t") -> None:
    """Raise ValueError unless t is a float tensor [B] with values in (0, T]."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of shape [B], got {type(t).__name__}"
                         + (f" of dtype {t.dtype}" if isinstance(t, torch.Tensor) else ""))
    if t.ndim != 1:
        raise ValueError(f"{name} must have shape [B], got shape {tuple(t.shape)}")
    if batch is not None and t.shape[0] != batch:
        raise ValueError(f"{name} has batch size {t.shape[0]} but x has batch size {batch}")
    if t.numel() and not bool(((t > 0) & (t <= T * (1 + 1e-6))).all()):
        raise ValueError(f"{name} must lie in (0, T] = (0, {T}], got values in "
                         f"[{t.min().item():.3g}, {t.max().item():.3g}]")


def check_batch(x: torch.Tensor, name: str = "x") -> None:
    """Raise ValueError unless x is a float tensor with a batch dimension."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point tensor of shape [B, ...] with at least "
                         f"2 dims (use [B, 1] for scalars), got {shape}")


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class SampleSeeds:
    """One torch.Generator per sample: sample i's noise comes from seeds[i] alone (as in EDM and k-diffusion),
    so it does not depend on the batch size or on the sample's position in the batch."""

    def __init__(self, seeds: Sequence[int], device):
        seeds = list(seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise ValueError(f"seeds must be a non-empty sequence of non-negative integers, got {seeds!r}")
        self.device = torch.device(device)
        self.generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape: Sequence[int], device, dtype) -> torch.Tensor:
        if shape[0] != len(self):
            raise ValueError(f"{len(self)} seeds given for a batch of {shape[0]} samples")
        return torch.stack([torch.randn(tuple(shape[1:]), generator=g, device=device, dtype=dtype) for g in self.generators])


def randn(shape: Sequence[int], generator: torch.Generator | SampleSeeds | None, device, dtype) -> torch.Tensor:
    """Standard normal noise drawn from `generator` (which must live on `device`), or from per-sample seeds."""
    if isinstance(generator, SampleSeeds):
        return generator.randn(shape, device, dtype)
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped, placed and typed like x."""
    return randn(x.shape, generator, x.device, x.dtype)


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is not None and torch.device(generator.device).type != torch.device(device).type:
        raise ValueError(f"generator lives on {generator.device} but sampling runs on {device}; "
                         f"create it with torch.Generator(device={str(device)!r})")


def progress(iterable, enabled: bool, desc: str = "", total: int | None = None):
    """Wrap an iterable in a tqdm bar when enabled and tqdm is installed."""
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is an optional extra
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)
