"""DDIM (Song, Meng & Ermon 2021, Eq. 12) for any SDE with Gaussian marginals.

    ε̂ = −σ_t s_θ,  x̂_0 = (x_t − σ_t ε̂)/α_t,  x_s = α_s x̂_0 + √(σ_s² − c²) ε̂ + c z,  c = η √β̃.
η = 0 is deterministic; η = 1 is algebraically the ancestral sampler with σ² = β̃ (same noise, same x).
With a model that declares a learned variance (scoresde.variances), c = η √Σ_θ per element, Σ_θ =
exp(v log β + (1 − v) log β̃) (Nichol & Dhariwal 2021, Eq. 15), capped at σ_s so that q_σ stays a valid
member of DDIM's family; η = 0 ignores v (one model call either way).
"""
from __future__ import annotations

import torch

from ..sde import posterior_coeffs
from .._utils import check_real, noise_like
from .base import Sampler, sqrt_


class DDIMSampler(Sampler):
    """DDIM with stochasticity η ∈ [0, 1]."""

    name = "ddim"
    one_step_when = ""  # one step at a time from x alone: projection-based conditioning applies
    kind = "discrete"  # family, for `scoresde compare`

    def __init__(self, eta: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.eta = check_real(eta, "eta", 0, 1)
        self.stochastic = self.eta > 0

    @property
    def optimizes_grid(self) -> bool:
        return not self.stochastic  # η = 0: local_step applies

    def local_step(self, sde, ts, xs, x0s, order):
        """x_s = α_s x̂_0 + σ_s ε̂ from the given x_t and x̂_0 (η = 0)."""
        alpha, sigma = (v.to(xs.device, xs.dtype) for v in sde.marginal_coeffs(ts[-2:]))
        return alpha[1] * x0s[-1] + sigma[1] * (xs[-1] - alpha[0] * x0s[-1]) / sigma[0]

    def prepare(self, sde, ts):
        alpha, sigma = sde.marginal_coeffs(ts)
        alpha_t, sigma_t, alpha_s, sigma_s = alpha[:-1], sigma[:-1], alpha[1:], sigma[1:]
        c = self.eta * sqrt_(posterior_coeffs(alpha_t, sigma_t, alpha_s, sigma_s)[2])
        # x_s = (α_s/α_t) x + B s + c z, with ε̂ = −σ_t s folded into B.
        b_eps = sqrt_(sigma_s**2 - c**2) - alpha_s * sigma_t / alpha_t
        return {"A": alpha_s / alpha_t, "B": -sigma_t * b_eps, "std": c}

    def prepare_for(self, score, sde, ts, x):
        c = self.prepare(sde, ts)
        if self.stochastic and score.learned_variance:
            alpha, sigma = sde.marginal_coeffs(ts)
            _, beta, beta_tilde = posterior_coeffs(alpha[:-1], sigma[:-1], alpha[1:], sigma[1:])
            c.update(log_beta=beta.log(), log_beta_tilde=beta_tilde.log(), alpha=alpha, sigma=sigma)
        return c

    def step(self, score, sde, x, k, c, generator):
        if "log_beta" in c:  # c = η √Σ_θ per element
            s, v = score.score_and_v(x, c["t"][k])
            alpha_t, sigma_t, alpha_s, sigma_s = c["alpha"][k], c["sigma"][k], c["alpha"][k + 1], c["sigma"][k + 1]
            noise = torch.minimum(self.eta * torch.exp(0.5 * (v * c["log_beta"][k] + (1 - v) * c["log_beta_tilde"][k])),
                                  sigma_s)
            x0_hat, eps = (x + sigma_t**2 * s) / alpha_t, -sigma_t * s
            return alpha_s * x0_hat + sqrt_(sigma_s**2 - noise**2) * eps + noise * noise_like(x, generator)
        x_next = c["A"][k] * x + c["B"][k] * score(x, c["t"][k])
        return x_next + c["std"][k] * noise_like(x, generator) if self.stochastic else x_next
