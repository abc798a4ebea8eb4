"""DDRM, denoising diffusion restoration models (Kawar, Elad, Ermon & Song 2022, Eqs. 7–8), in A's spectral space.

With A = U Σ Vᵀ, the coordinates x̄ = Vᵀ(x_t/α_t) have noise level σ̄_t = σ_t/α_t, ȳ = Σ⁺Uᵀy observes x̄_0 with
noise σ_y/s_i, and x̄_0 = Vᵀx̂_0. Each move from σ̄_t to σ̄_s, per coordinate i (z fresh):
    s_i = 0:               x̄_s = x̄_0 + √(1 − η²) σ̄_s (x̄_t − x̄_0)/σ̄_t + η σ̄_s z
    σ̄_s < σ_y/s_i:         x̄_s = x̄_0 + √(1 − η²) σ̄_s (ȳ − x̄_0)/(σ_y/s_i) + η σ̄_s z
    σ̄_s ≥ σ_y/s_i:         x̄_s = (1 − η_b) x̄_0 + η_b ȳ + √(σ̄_s² − η_b² σ_y²/s_i²) z
and x_s = α_s V x̄_s. The last move, to σ̄ = 0, gives x̄_0 on unobserved coordinates and, with σ_y = 0,
(1 − η_b) x̄_0 + η_b ȳ on observed ones: ȳ itself with η_b = 1, so A x = y exactly. The start is Eq. 7's
x̄_T ~ N(ȳ, σ̄_T² − σ_y²/s_i²) on observed coordinates (where σ̄_T ≥ σ_y/s_i), N(0, σ̄_T²) elsewhere.
η = 0.85 and η_b = 1 are the paper's defaults (its ImageNet and CelebA restorations with 20 steps).
Only the grid is taken from the wrapped sampler.
"""
from __future__ import annotations

import torch

from .._utils import check_real, noise_like
from .base import Solver, safe_inverse


class DDRM(Solver):
    """DDRM with η and η_b."""

    method = "ddrm"
    options = ("eta", "eta_b")

    def __init__(self, sampler, operator, y, sigma_y: float = 0.0, shape=None, eta: float = 0.85,
                 eta_b: float = 1.0):
        super().__init__(sampler, operator, y, sigma_y, shape)
        self.eta_ddrm = check_real(eta, "eta", 0, 1)  # η: the noise of unobserved and noisier coordinates
        self.eta_b = check_real(eta_b, "eta_b", 0, 1)  # η_b: the pull towards ȳ where the observation is sharper

    def spectral(self, x, c):
        """Per coordinate of Vᵀx: observed (s > 0), the observation's noise σ_y/s (∞ if unobserved), and ȳ."""
        op = self.operator
        s, ybar = self.spectral_y(c, x)
        observed = op.observed(x)
        noise_y = torch.full(observed.shape, torch.inf, dtype=x.dtype, device=x.device)
        noise_y[:len(s)] = torch.where(s > 0, self.sigma_y * safe_inverse(s), torch.inf)
        return observed, noise_y, op.pad(ybar)

    def start(self, x, c):
        observed, noise_y, ybar = self.spectral(x, c)
        sbar_T = c["sigma"][0] / c["alpha"][0]
        begin = observed & (sbar_T >= noise_y)
        z = self.operator.Vt(x / c["prior_std"])  # the base loop drew x ~ N(0, prior_std² I): z̄ is standard
        xbar = torch.where(begin, ybar + (sbar_T**2 - noise_y.clamp(max=sbar_T) ** 2).sqrt() * z, sbar_T * z)
        c.update(observed=observed, noise_y=noise_y, ybar=ybar)
        return c["alpha"][0] * self.operator.V(xbar)

    def move(self, score, x, k, c, generator):
        op, eta, eta_b = self.operator, self.eta_ddrm, self.eta_b
        observed, noise_y, ybar = c["observed"], c["noise_y"], c["ybar"]
        sbar_t, sbar_s = c["sigma"][k] / c["alpha"][k], c["sigma"][k + 1] / c["alpha"][k + 1]
        x0 = self.x0_hat(score, x, k, c)
        xbar0, xbar_t = op.Vt(x0), op.Vt(x / c["alpha"][k])
        z = op.Vt(noise_like(x, generator)) if sbar_s > 0 else torch.zeros_like(xbar0)
        keep = (1 - eta**2) ** 0.5 * sbar_s
        unobserved = xbar0 + keep * (xbar_t - xbar0) / sbar_t + eta * sbar_s * z
        safe_noise = torch.where(torch.isfinite(noise_y) & (noise_y > 0), noise_y, torch.ones_like(noise_y))
        noisier = xbar0 + keep * (ybar - xbar0) / safe_noise + eta * sbar_s * z
        sharper = ((1 - eta_b) * xbar0 + eta_b * ybar
                   + (sbar_s**2 - eta_b**2 * noise_y.clamp(max=sbar_s) ** 2).clamp(min=0).sqrt() * z)
        xbar = torch.where(~observed, unobserved, torch.where(sbar_s < noise_y, noisier, sharper))
        return c["alpha"][k + 1] * op.V(xbar)
