"""2-D toy distributions generated in code: checkerboard, swiss roll, eight Gaussians, two moons.

Each is `sample(n, generator=None, return_labels=False)`; the mixtures label each point with its part
(`NUM_CLASSES`): the Gaussian of eight Gaussians, the square of the checkerboard, the moon of two moons.
"""
from __future__ import annotations

import functools
import math

import torch

from .._utils import check_generator, check_positive_int


def _checked(sample):
    """Validate the (n, generator) every toy sampler takes: n >= 1, a CPU generator or None; return x, or
    (x, labels) with return_labels=True."""
    @functools.wraps(sample)
    def wrapper(n: int, generator=None, return_labels: bool = False):
        check_positive_int(n, "n")
        check_generator(generator, "cpu")
        x, y = sample(n, generator)
        if not return_labels:
            return x
        if y is None:
            raise ValueError(f"{sample.__name__} has no class labels; labelled toy data: {sorted(NUM_CLASSES)}")
        return x, y
    return wrapper


@_checked
def checkerboard(n: int, generator=None) -> torch.Tensor:
    """Uniform on the black squares of a 4×4 board over [−2, 2]² (Grathwohl et al. 2019)."""
    x1 = torch.rand(n, generator=generator) * 4 - 2
    row = torch.randint(0, 2, (n,), generator=generator)
    x2 = torch.rand(n, generator=generator) - row * 2.0
    x2 = x2 + (torch.floor(x1) % 2)
    return torch.stack([x1, x2], 1) * 1.0, 2 * (torch.floor(x1).long() + 2) + row  # label: which black square


@_checked
def swiss_roll(n: int, generator=None) -> torch.Tensor:
    """The 2-D swiss roll, scaled to about [−2, 2]², with noise 0.05."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 7.5
    return x + 0.05 * torch.randn(n, 2, generator=generator), None


@_checked
def eight_gaussians(n: int, generator=None) -> torch.Tensor:
    """Eight Gaussians of std 0.1 on a circle of radius 2."""
    k = torch.randint(0, 8, (n,), generator=generator)
    centers = 2 * torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], 1)
    return centers + 0.1 * torch.randn(n, 2, generator=generator), k


@_checked
def moons(n: int, generator=None) -> torch.Tensor:
    """Two interleaving half circles with noise 0.05, centred."""
    t = math.pi * torch.rand(n, generator=generator)
    upper = torch.randint(0, 2, (n,), generator=generator).bool()
    x = torch.where(upper[:, None], torch.stack([torch.cos(t), torch.sin(t)], 1),
                    torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], 1))
    return (x - torch.tensor([0.5, 0.25])) * 1.5 + 0.05 * torch.randn(n, 2, generator=generator), upper.long()


NUM_CLASSES = {"checkerboard": 8, "eight_gaussians": 8, "moons": 2}  # labelled toy data and their class counts
TOY = {"checkerboard": checkerboard, "swiss_roll": swiss_roll, "eight_gaussians": eight_gaussians, "moons": moons}
