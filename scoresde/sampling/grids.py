"""Time grids from T down to eps, one option (`grid=`) for every sampler.

    uniform    t uniform                                   (Song et al. 2021)
    logsnr     λ_t = log(α_t/σ_t) uniform                  (Lu et al. 2022, DPM-Solver)
    karras     σ̃_t = σ_t/α_t uniform in σ̃^{1/ρ}, ρ = 7    (Karras et al. 2022, Eq. 5)
    quadratic  t − eps uniform in its square root           (Song, Meng & Ermon 2021, DDIM's "quad")
Each grid has `steps` float64 times with ts[0] = T and ts[-1] = eps. A grid defined in λ or σ̃ is mapped
back to t by bisection on the SDE's own marginals, so every grid works for every SDE.
"""
from __future__ import annotations

import torch

from .._utils import choice_error
from ..parameterization import time_convention
from ..sde import SDE, DiscreteTimeVPSDE


def log_snr(sde: SDE, t: torch.Tensor) -> torch.Tensor:
    """λ_t = log(α_t/σ_t), decreasing in t."""
    alpha, sigma = sde.marginal_coeffs(t)
    return (alpha / sigma).log()


def t_of_log_snr(sde: SDE, lam: torch.Tensor, T: float, eps: float) -> torch.Tensor:
    """The t ∈ [eps, T] with λ_t = lam, by 100 bisections in float64 (λ outside the range gives an end)."""
    lo, hi = torch.full_like(lam, eps), torch.full_like(lam, T)
    for _ in range(100):
        mid = (lo + hi) / 2
        above = log_snr(sde, mid) > lam
        lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
    return (lo + hi) / 2


def _ends(sde, T, eps):
    return log_snr(sde, torch.tensor([T, eps], dtype=torch.float64)).tolist()


def uniform(sde, T, eps, steps, rho):
    return torch.linspace(T, eps, steps, dtype=torch.float64)


def logsnr(sde, T, eps, steps, rho):
    return t_of_log_snr(sde, torch.linspace(*_ends(sde, T, eps), steps, dtype=torch.float64), T, eps)


def karras(sde, T, eps, steps, rho):
    """σ̃_i = (σ̃_max^{1/ρ} + i/(K−1) (σ̃_min^{1/ρ} − σ̃_max^{1/ρ}))^ρ (Karras et al. 2022, Eq. 5)."""
    s_max, s_min = (-torch.tensor(_ends(sde, T, eps), dtype=torch.float64)).exp()
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    sigma = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    return t_of_log_snr(sde, -sigma.log(), T, eps)


def quadratic(sde, T, eps, steps, rho):
    return eps + (T - eps) * torch.linspace(1, 0, steps, dtype=torch.float64) ** 2


GRIDS = {"uniform": uniform, "logsnr": logsnr, "karras": karras, "quadratic": quadratic}


def make_grid(name: str, sde: SDE, T: float, eps: float, steps: int, rho: float = 7.0) -> torch.Tensor:
    """`steps` times from T down to eps on the named grid; the ends are exact."""
    if name not in GRIDS:
        raise choice_error("grid", name, GRIDS)
    if steps < 3:
        return uniform(sde, T, eps, steps, rho)
    ts = GRIDS[name](sde, T, eps, steps, rho)
    ts[0], ts[-1] = T, eps
    return ts


def for_model(sde: SDE, ts: torch.Tensor, score_fn) -> tuple[SDE, torch.Tensor]:
    """The SDE and grid that the score's declared time convention asks for.

    continuous: the SDE and grid unchanged. discrete: `DiscreteTimeVPSDE` (DDPM's ᾱ_i) and the grid
    snapped to DDPM steps t_i = iT/N with repeats dropped, so the sampler may take fewer steps than asked.
    """
    if time_convention(score_fn) == "continuous":
        return sde, ts
    model_sde = DiscreteTimeVPSDE(sde)
    return model_sde, model_sde.snap(ts)
