"""Noise schedules β(t) for the VP and sub-VP SDEs, with the integral ∫₀ᵗ β(s) ds in closed form.

A schedule is any object with `beta(t)`, `integral(t)` and `discrete_betas(N)`; pass one to
`VPSDE(schedule=...)` to use your own (see examples/custom_sde.py).
"""
from __future__ import annotations

import math

import torch

from ._utils import check_choice, check_positive_int, check_real


class LinearSchedule:
    """β(t) = β_min + t (β_max − β_min) on [0, 1] (Song et al. 2021, Eq. 33; Ho et al. 2020)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        check_real(beta_min, "beta_min", low=0)
        check_real(beta_max, "beta_max")
        if not beta_max > beta_min:
            raise ValueError(f"beta_max must be greater than beta_min, got beta_min={beta_min}, beta_max={beta_max}")
        self.beta_min = float(beta_min)  # β(0)
        self.beta_max = float(beta_max)  # β(1)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integral(self, t: torch.Tensor) -> torch.Tensor:
        """∫₀ᵗ β(s) ds = β_min t + ½ t² (β_max − β_min)."""
        return self.beta_min * t + 0.5 * t**2 * (self.beta_max - self.beta_min)

    def discrete_betas(self, N: int) -> torch.Tensor:
        """DDPM's β_i = linspace(β_min/N, β_max/N, N): 1e-4 … 0.02 for the defaults (Ho et al. 2020)."""
        return torch.linspace(self.beta_min / N, self.beta_max / N, N, dtype=torch.float64)


class CosineSchedule:
    """Continuous-time cosine schedule (Nichol & Dhariwal 2021, Eq. 17).

    ᾱ(t) = f(t)/f(0), f(t) = cos²(((t + s)/(1 + s))·π/2), so β(t) = −d log ᾱ/dt = π/(1+s)·tan(θ(t)).
    β(t) → ∞ as t → 1. As the paper clips each discrete β_i at `max_beta` (0.999), β(t) is clipped at
    −N log(1 − max_beta): the rate that gives exactly β_i = max_beta over one step of length 1/N.
    With N = 1000 the clip starts at t ≈ 0.99971 and ᾱ(1) ≈ 2.7e-8, so p_1 is N(0, I) up to a mean
    of at most 1.6e-4 · |x_0| (`VPSDE.prior_std` stays 1).
    """

    def __init__(self, s: float = 0.008, max_beta: float = 0.999, N: int = 1000):
        check_real(s, "s (the cosine offset)", low=0, inclusive=(False, True))
        check_real(max_beta, "max_beta", 0, 1, inclusive=(False, False))
        check_positive_int(N, "N")
        self.s = float(s)  # small offset that keeps β(0) away from 0
        self.beta_clip = -N * math.log1p(-max_beta)  # continuous-time clip of β(t)
        tan_clip = self.beta_clip * (1 + self.s) / math.pi
        self.t_clip = math.atan(tan_clip) * 2 * (1 + self.s) / math.pi - self.s  # β(t_clip) = beta_clip

    def _theta(self, t):
        return (t + self.s) / (1 + self.s) * (math.pi / 2)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        raw = math.pi / (1 + self.s) * torch.tan(self._theta(t.clamp(max=self.t_clip)))
        return torch.where(t < self.t_clip, raw, torch.full_like(raw, self.beta_clip))

    def integral(self, t: torch.Tensor) -> torch.Tensor:
        """∫₀ᵗ β = −log ᾱ(t): 2 log(cos θ(0)/cos θ(t)) up to the clip point, then linear."""
        tc = t.clamp(max=self.t_clip)
        head = 2 * (math.log(math.cos(self._theta(0.0))) - torch.log(torch.cos(self._theta(tc))))
        return head + self.beta_clip * (t - tc)

    def discrete_betas(self, N: int) -> torch.Tensor:
        """β_i = 1 − ᾱ(i/N)/ᾱ((i−1)/N), i = 1…N: the paper's betas, clipped at max_beta."""
        t = torch.linspace(0, 1, N + 1, dtype=torch.float64)
        return -torch.expm1(-(self.integral(t[1:]) - self.integral(t[:-1])))


class DiscreteSchedule:
    """Any DDPM beta array β_1…β_N as a piecewise-constant β(t) = −N log(1 − β_i) on ((i−1)/N, i/N].

    Then ∫₀^{i/N} β = −Σ_{j≤i} log(1 − β_j), so ᾱ(i/N) equals DDPM's ᾱ_i = Π_{j≤i}(1 − β_j) exactly
    (Ho et al. 2020, Eq. 4), for schedules with no closed form (scaled linear, learned or trained betas).
    """

    def __init__(self, betas):
        betas = torch.as_tensor(betas, dtype=torch.float64).cpu()
        if betas.ndim != 1 or len(betas) < 1:
            raise ValueError(f"betas must be a 1-D sequence of DDPM betas, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(f"every beta must lie in (0, 1), got values in [{betas.min().item():.3g}, "
                             f"{betas.max().item():.3g}]")
        self.N = len(betas)  # number of DDPM steps
        self.betas = betas  # DDPM β_i, float64
        self.step_integral = -torch.log1p(-betas)  # ∫β over step i: −log(1 − β_i)
        self.cumulative = torch.cat([betas.new_zeros(1), self.step_integral.cumsum(0)])  # ∫₀^{i/N} β, i = 0…N

    def _step(self, t: torch.Tensor) -> torch.Tensor:
        """0-based index i − 1 of the DDPM step i whose interval ((i−1)/N, i/N] holds t (the first also holds 0)."""
        return (torch.ceil(t * self.N).long() - 1).clamp(0, self.N - 1)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return (self.N * self.step_integral).to(t.device, t.dtype)[self._step(t)]

    def integral(self, t: torch.Tensor) -> torch.Tensor:
        """∫₀ᵗ β: the whole steps before t plus the part of t's own step."""
        k = self._step(t)
        head, rate = self.cumulative.to(t.device, t.dtype)[k], self.step_integral.to(t.device, t.dtype)[k]
        return head + (t * self.N - k) * rate

    def discrete_betas(self, N: int) -> torch.Tensor:
        """The betas it was built from; N must be their number."""
        if N != self.N:
            raise ValueError(f"this schedule holds {self.N} betas, so the SDE needs N={self.N}, got N={N}")
        return self.betas.clone()


SCHEDULES = {"linear": LinearSchedule, "cosine": CosineSchedule}


def get_schedule(schedule, beta_min: float, beta_max: float, N: int):
    """Return a schedule object from a name in SCHEDULES, or pass a schedule object through."""
    if schedule is not None and not isinstance(schedule, str):
        missing = [m for m in ("beta", "integral") if not callable(getattr(schedule, m, None))]
        if missing:
            raise ValueError(f"schedule must be one of {sorted(SCHEDULES)} or an object with beta(t) and "
                             f"integral(t) methods; {type(schedule).__name__} lacks {missing}")
        return schedule
    if check_choice(schedule, "schedule", SCHEDULES) == "cosine":
        check_real(beta_min, "beta_min")  # unused by the cosine schedule, but still checked
        check_real(beta_max, "beta_max")
        return CosineSchedule(N=N)
    return LinearSchedule(beta_min, beta_max)
