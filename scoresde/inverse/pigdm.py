"""ΠGDM, pseudoinverse-guided diffusion (Song, Vahdat, Mardani & Kautz 2023, Eqs. 5–8).

p(x_0 | x_t) is taken Gaussian, N(x̂_0, r_t² I) with r_t² = σ_t²/(α_t² + σ_t²) (the posterior variance of x_0 under a
N(0, I) prior), so p(y | x_t) ≈ N(y; A x̂_0, r_t² AAᵀ + σ_y² I) and its score is one vector-Jacobian product:
    g = (∂x̂_0/∂x_t)ᵀ Aᵀ (r_t² AAᵀ + σ_y² I)⁻¹ (y − A x̂_0),
with the inverse diagonal in A's SVD (a pseudo-inverse where s = 0). The guided score s_θ + g gives the
conditional x̂_0 + (σ_t²/α_t) g and ε̂ − σ_t g of the move. For a N(0, I) prior this g is ∇ log p(y | x_t) exactly.
The guidance weight is 1, the paper's; there is nothing else to tune.
"""
from __future__ import annotations

import torch

from .._utils import noise_like
from .base import Solver, grad_of, safe_inverse


class PiGDM(Solver):
    """ΠGDM: the move with the score s_θ + g, g the Gaussian approximation's ∇ log p(y | x_t)."""

    method = "pigdm"

    def guidance(self, score, x, k, c):
        """(x̂_0, g) at grid time k."""
        op, alpha, sigma = self.operator, c["alpha"][k], c["sigma"][k]
        r2 = sigma**2 / (alpha**2 + sigma**2)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            x0 = self.x0_hat(score, xg, k, c)
            s = op.singulars(x)
            weights = s * safe_inverse(r2 * s**2 + self.sigma_y**2)  # Σ (r² Σ² + σ_y²)⁻¹ on the k coordinates
            residual = op.Ut(c["y"] - op.A(x0.detach()))[:, :len(s)]
            v = op.V(op.pad(weights * residual))  # Aᵀ (r² AAᵀ + σ_y² I)⁻¹ (y − A x̂_0)
            g = grad_of(x0, xg, v.to(x0.dtype))
        return x0.detach(), g

    def move(self, score, x, k, c, generator):
        x0, g = self.guidance(score, x, k, c)
        x0 = x0 + c["sigma"][k] ** 2 / c["alpha"][k] * g  # the conditional Tweedie estimate
        if k == len(c["t"]) - 1:
            return x0
        return self.ddim(x, x0, k, c, c["c"][k] * noise_like(x, generator))
