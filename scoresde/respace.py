"""Respacing: run a discrete-time model on a subsequence of its N steps (Nichol & Dhariwal 2021, Sec. 4).

The kept steps keep their ᾱ; every step between kept steps s < t gets β = 1 − ᾱ_t/ᾱ_s and β̃ = β (1 − ᾱ_s)/(1 − ᾱ_t),
which is what the samplers compute from the marginals of their grid. A respacing is spelt as in guided-diffusion:
    "250"        250 evenly spaced steps (rounded), the first and last included
    "10,15,20"   N split into 3 equal sections, strided to 10, 15 and 20 steps
    "ddim25"     DDIM's striding: every N/25-th step from 0 (an integer stride giving exactly 25 steps)
    [0, 9, …]    (a list of ints) exactly these steps
Steps are the network's timesteps 0 … N−1 (DDPM step i = index + 1, at time t_i = iT/N).
"""
from __future__ import annotations

import torch

from ._utils import ArgumentTypeError, describe


def respaced_steps(spec, N: int) -> list[int]:
    """The kept timesteps (0-based, ascending) of a respacing spec for an N-step model."""
    if isinstance(spec, (list, tuple)) or (isinstance(spec, torch.Tensor) and spec.ndim == 1):
        steps = [int(i) for i in spec]
        if not steps or any(isinstance(i, bool) for i in spec) or any(not 0 <= i < N for i in steps):
            raise ValueError(f"respacing as a list must hold timesteps in {{0, …, N−1}} = {{0, …, {N - 1}}}, "
                             f"got {list(spec)[:10]}")
        return sorted(set(steps))
    if not isinstance(spec, str):
        raise ArgumentTypeError(f"respacing must be a string such as '250', '10,15,20' or 'ddim25', or a list of "
                                f"timesteps, got {describe(spec)}")
    if spec.startswith("ddim"):
        count = _count(spec[4:], spec)
        for stride in range(1, N):
            if len(range(0, N, stride)) == count:
                return list(range(0, N, stride))
        raise ValueError(f"respacing {spec!r}: no integer stride gives exactly {count} of {N} steps")
    counts = [_count(part, spec) for part in spec.split(",")]
    size, extra = divmod(N, len(counts))
    steps, start = [], 0
    for i, count in enumerate(counts):
        section = size + (1 if i < extra else 0)
        if section < count:
            raise ValueError(f"respacing {spec!r}: a section of {section} steps cannot hold {count}")
        stride, position = ((section - 1) / (count - 1) if count > 1 else 1), 0.0
        for _ in range(count):  # accumulated, as guided-diffusion does, so that ties round the same way
            steps.append(start + round(position))
            position += stride
        start += section
    return sorted(set(steps))


def respaced_times(spec, N: int, T: float = 1.0) -> torch.Tensor:
    """The kept DDPM steps as a decreasing float64 time grid t_i = iT/N, i = timestep + 1 (a sampler's `ts`)."""
    steps = torch.tensor(respaced_steps(spec, N), dtype=torch.float64)
    return ((steps + 1) * (T / N)).flip(0)


def _count(text: str, spec: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"respacing must be like '250', '10,15,20' or 'ddim25', got {spec!r}") from None
    if count < 1:
        raise ValueError(f"respacing {spec!r}: step counts must be >= 1")
    return count
