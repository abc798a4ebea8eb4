"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), for any SDE with Gaussian marginals.

From s < t on the grid, with x̂_0 = (x_t + σ_t² s_θ)/α_t, a = α_t/α_s and v = σ_t² − a² σ_s²:
    x_s = (a σ_s²/σ_t²) x_t + (α_s v/σ_t²) x̂_0 + σ z,   σ² = β̃ = v σ_s²/σ_t²  or  β = v.
This is the posterior q(x_s | x_t, x̂_0) (Ho et al. 2020, Eqs. 6–7). On VP with v = 1 − a² it is
DDPM's x_{t−1} = (x_t − β_t/√(1−ᾱ_t) ε_θ)/√α_t + σ_t z; on VE it is SMLD's ancestral sampler
(Song et al. 2021, Eq. 47). The coefficients use the model's own ᾱ on the chosen grid (ᾱ(t) for a
continuous model, DDPM's ᾱ_i for a discrete one), so β never reaches 1 and any number of steps works.
"""
from __future__ import annotations

from .._utils import check_choice, noise_like
from ..sde import transition_from_marginals
from .base import Sampler, sqrt_

VARIANCES = ("beta_tilde", "beta")


def posterior_coeffs(alpha_t, sigma_t, alpha_s, sigma_s):
    """a, v of the transition s → t and the posterior variance β̃ = v σ_s²/σ_t²."""
    a, v = transition_from_marginals(alpha_t, sigma_t, alpha_s, sigma_s)
    return a, v, v * sigma_s**2 / sigma_t**2


class AncestralSampler(Sampler):
    """DDPM Algorithm 2; with a discrete-time score on VPSDE and steps = N it is DDPM exactly."""

    name = "ancestral"
    kind = "discrete"  # family, for `scoresde compare`

    def __init__(self, variance: str = "beta_tilde", **kwargs):
        super().__init__(**kwargs)
        self.variance = check_choice(variance, "variance", VARIANCES)  # σ_t² = β̃_t (posterior) or β_t

    def prepare(self, sde, ts):
        alpha, sigma = sde.marginal_coeffs(ts)
        a, v, beta_tilde = posterior_coeffs(alpha[:-1], sigma[:-1], alpha[1:], sigma[1:])
        c_x, c_0 = a * sigma[1:] ** 2 / sigma[:-1] ** 2, alpha[1:] * v / sigma[:-1] ** 2
        # Fold x̂_0 = (x + σ_t² s)/α_t in:  x_s = A x + B s + std z.
        return {"A": c_x + c_0 / alpha[:-1], "B": c_0 * sigma[:-1] ** 2 / alpha[:-1],
                "std": sqrt_(beta_tilde if self.variance == "beta_tilde" else v)}

    def step(self, score, sde, x, k, c, generator):
        return c["A"][k] * x + c["B"][k] * score(x, c["t"][k]) + c["std"][k] * noise_like(x, generator)
