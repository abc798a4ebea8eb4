"""DDIM (Song, Meng & Ermon 2021, Eq. 12) for any SDE with Gaussian marginals.

    ε̂ = −σ_t s_θ,  x̂_0 = (x_t − σ_t ε̂)/α_t,  x_s = α_s x̂_0 + √(σ_s² − c²) ε̂ + c z,  c = η √β̃.
η = 0 is deterministic; η = 1 is algebraically the ancestral sampler with σ² = β̃ (same noise, same x).
"""
from __future__ import annotations

from .ancestral import posterior_coeffs
from .._utils import check_real, noise_like
from .base import Sampler, sqrt_


class DDIMSampler(Sampler):
    """DDIM with stochasticity η ∈ [0, 1]."""

    name = "ddim"
    kind = "discrete"  # family, for `scoresde compare`

    def __init__(self, eta: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.eta = check_real(eta, "eta", 0, 1)
        self.stochastic = self.eta > 0

    def prepare(self, sde, ts):
        alpha, sigma = sde.marginal_coeffs(ts)
        alpha_t, sigma_t, alpha_s, sigma_s = alpha[:-1], sigma[:-1], alpha[1:], sigma[1:]
        c = self.eta * sqrt_(posterior_coeffs(alpha_t, sigma_t, alpha_s, sigma_s)[2])
        # x_s = (α_s/α_t) x + B s + c z, with ε̂ = −σ_t s folded into B.
        b_eps = sqrt_(sigma_s**2 - c**2) - alpha_s * sigma_t / alpha_t
        return {"A": alpha_s / alpha_t, "B": -sigma_t * b_eps, "std": c}

    def step(self, score, sde, x, k, c, generator):
        x_next = c["A"][k] * x + c["B"][k] * score(x, c["t"][k])
        return x_next + c["std"][k] * noise_like(x, generator) if self.stochastic else x_next
