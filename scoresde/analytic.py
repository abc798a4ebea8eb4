"""Gaussian-mixture data with closed-form perturbed densities and scores, for checking samplers and likelihoods.

For p_0 = Σ_k w_k N(μ_k, Σ_k) and x_t = α_t x_0 + σ_t z, p_t = Σ_k w_k N(α_t μ_k, α_t² Σ_k + σ_t² I)
under every SDE in scoresde (VP, sub-VP, VE). Computations run in the dtype and device of the inputs.
"""
from __future__ import annotations

import math

import torch


class GaussianMixture:
    """Data distribution Σ_k w_k N(μ_k, Σ_k) in D dimensions, with exact scores under any linear SDE."""

    def __init__(self, weights, means, covs):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.means = torch.as_tensor(means, dtype=torch.float64)  # [K, D]
        covs = torch.as_tensor(covs, dtype=torch.float64)  # [K, D, D]
        self.lam, self.Q = torch.linalg.eigh(covs)  # Σ_k = Q diag(λ) Qᵀ
        self.covs = covs
        self.dim = self.means.shape[1]

    def _params(self, x, alpha):
        dev, dt = x.device, x.dtype
        alpha = alpha.to(dev, dt)
        return (self.weights.to(dev, dt), self.means.to(dev, dt), self.lam.to(dev, dt), self.Q.to(dev, dt), alpha)

    def _components(self, x, alpha, sigma):
        """Per component: log w_k N(x; α μ_k, α² Σ_k + σ² I) [B, K] and C_k⁻¹(x − α μ_k) [B, K, D]."""
        w, mu, lam, Q, alpha = self._params(x, alpha)
        sigma = sigma.to(x.device, x.dtype)
        var = alpha[:, None, None] ** 2 * lam[None] + sigma[:, None, None] ** 2  # [B, K, D] eigenvalues of C_k
        diff = x[:, None, :] - alpha[:, None, None] * mu[None]  # [B, K, D]
        proj = torch.einsum("kde,bkd->bke", Q, diff)  # Qᵀ diff
        logp = (w.log()[None] - 0.5 * (proj**2 / var).sum(-1) - 0.5 * var.log().sum(-1)
                - 0.5 * self.dim * math.log(2 * math.pi))
        prec_diff = torch.einsum("kde,bke->bkd", Q, proj / var)  # C_k⁻¹ diff
        return logp, prec_diff

    def score(self, sde, x, t):
        """∇ log p_t(x) for a flat x [B, D]."""
        return self.score_at(x, *sde.marginal_coeffs(t))

    def score_at(self, x, alpha, sigma):
        """∇ log p(x) of x = α x_0 + σ z for a flat x [B, D], with α, σ per sample [B] (any schedule)."""
        logp, prec_diff = self._components(x, alpha, sigma)
        resp = torch.softmax(logp, dim=1)
        return -(resp[..., None] * prec_diff).sum(1)

    def log_prob(self, sde, x, t):
        """log p_t(x) [B]."""
        alpha, sigma = sde.marginal_coeffs(t)
        return torch.logsumexp(self._components(x, alpha, sigma)[0], dim=1)

    def score_fn(self, sde):
        """score_fn(x, t) for data of any shape [B, ...] whose flattening has D entries."""
        return lambda x, t: self.score(sde, x.flatten(1), t).reshape(x.shape)

    def sample(self, n, generator=None, device="cpu", dtype=torch.float64):
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator).to(device)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64).to(device, dtype)
        Q, lam, mu = self.Q.to(device, dtype), self.lam.to(device, dtype), self.means.to(device, dtype)
        return mu[k] + torch.einsum("bde,be->bd", Q[k], lam[k].sqrt() * z)

    def mean(self):
        return (self.weights[:, None] * self.means).sum(0)

    def cov(self):
        m = self.mean()
        second = (self.weights[:, None, None] * (self.covs + self.means[:, :, None] * self.means[:, None, :])).sum(0)
        return second - m[:, None] * m[None, :]
