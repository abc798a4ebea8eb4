"""Gaussian-mixture data with closed-form perturbed densities and scores, for checking samplers and likelihoods.

For p_0 = Σ_k w_k N(μ_k, Σ_k) and x_t = α_t x_0 + σ_t z, p_t = Σ_k w_k N(α_t μ_k, α_t² Σ_k + σ_t² I)
under every SDE in scoresde (VP, sub-VP, VE). Computations run in the dtype and device of the inputs.
"""
from __future__ import annotations

import math

import torch

from ._utils import ArgumentTypeError, check_device, check_dtype, check_generator, check_positive_int, describe
from .score import Score


def _float64(value, name: str, shape: str) -> torch.Tensor:
    try:
        out = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ArgumentTypeError(f"{name} must be numbers of shape {shape}, got {describe(value)}") from None
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} must be finite, got {out.tolist()}")
    return out


class GaussianMixture:
    """Data distribution Σ_k w_k N(μ_k, Σ_k) in D dimensions, with exact scores under any linear SDE."""

    def __init__(self, weights, means, covs):
        self.weights = _float64(weights, "weights", "[K]")
        self.means = _float64(means, "means", "[K, D]")  # [K, D]
        covs = _float64(covs, "covs", "[K, D, D]")  # [K, D, D]
        K = len(self.weights) if self.weights.ndim == 1 else -1
        if K < 1 or self.means.ndim != 2 or len(self.means) != K or covs.shape != (K, *self.means.shape[1:] * 2):
            raise ValueError(f"weights, means and covs must have shapes [K], [K, D] and [K, D, D], got "
                             f"{tuple(self.weights.shape)}, {tuple(self.means.shape)} and {tuple(covs.shape)}")
        if not bool((self.weights > 0).all()) or abs(self.weights.sum().item() - 1) > 1e-6:
            raise ValueError(f"weights must be > 0 and sum to 1, got {self.weights.tolist()}")
        if not torch.allclose(covs, covs.transpose(1, 2)):
            raise ValueError("covs must be symmetric matrices")
        self.lam, self.Q = torch.linalg.eigh(covs)  # Σ_k = Q diag(λ) Qᵀ
        if not bool((self.lam > 0).all()):
            raise ValueError(f"covs must be positive definite, got eigenvalues down to {self.lam.min().item():.3g}")
        self.covs = covs
        self.dim = self.means.shape[1]

    def _params(self, x, alpha):
        dev, dt = x.device, x.dtype
        alpha = alpha.to(dev, dt)
        return (self.weights.to(dev, dt), self.means.to(dev, dt), self.lam.to(dev, dt), self.Q.to(dev, dt), alpha)

    def _components(self, x, alpha, sigma):
        """Per component: log w_k N(x; α μ_k, α² Σ_k + σ² I) [B, K] and C_k⁻¹(x − α μ_k) [B, K, D]."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have D = {self.dim} values per sample, shape [B, {self.dim}] (or [B, ...] "
                             f"through score_fn), got {describe(x)}")
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
        return Score(lambda x, t: self.score(sde, x.flatten(1), t).reshape(x.shape))

    def class_logits(self, sde, x, t):
        """log w_k p_t(x | k) [B, K]: logits of the exact noise-aware classifier p(k | x_t) (Bayes' rule)."""
        return self._components(x, *sde.marginal_coeffs(t))[0]

    def classifier(self, sde):
        """classifier(x, t) → logits [B, K] of p(k | x_t): the exact noise-aware classifier."""
        return lambda x, t: self.class_logits(sde, x.flatten(1), t)

    def conditional_score_fn(self, sde):
        """score_fn(x, t, y=None) of the class-conditional model whose classes are the components:
        ∇ log p_t(x | y) for labels y [B] in {0…K−1}; y = None or K gives the mixture's score ∇ log p_t(x)."""
        K = len(self.weights)

        def score_fn(x, t, y=None):
            logp, prec_diff = self._components(x.flatten(1), *sde.marginal_coeffs(t))
            unconditional = -(torch.softmax(logp, dim=1)[..., None] * prec_diff).sum(1)
            if y is None:
                return unconditional.reshape(x.shape)
            y = y.to(x.device).long().expand(x.shape[0])
            per_class = -prec_diff.gather(1, y.clamp(max=K - 1)[:, None, None].expand(-1, 1, self.dim))[:, 0]
            return torch.where((y == K)[:, None], unconditional, per_class).reshape(x.shape)

        return Score(score_fn, num_classes=K)

    def component(self, k: int) -> "GaussianMixture":
        """The class-k distribution N(μ_k, Σ_k), as a one-component mixture."""
        return GaussianMixture([1.0], self.means[k:k + 1], self.covs[k:k + 1])

    def sample(self, n, generator=None, device="cpu", dtype=torch.float64, return_labels: bool = False):
        """n samples [n, D]; with return_labels=True also their components [n] (the class labels)."""
        check_positive_int(n, "n")
        check_generator(generator, "cpu")  # the draws are made on the CPU, then moved
        device, dtype = check_device(device), check_dtype(dtype)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator).to(device)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64).to(device, dtype)
        Q, lam, mu = self.Q.to(device, dtype), self.lam.to(device, dtype), self.means.to(device, dtype)
        x = mu[k] + torch.einsum("bde,be->bd", Q[k], lam[k].sqrt() * z)
        return (x, k) if return_labels else x

    def mean(self):
        return (self.weights[:, None] * self.means).sum(0)

    def cov(self):
        m = self.mean()
        second = (self.weights[:, None, None] * (self.covs + self.means[:, :, None] * self.means[:, None, :])).sum(0)
        return second - m[:, None] * m[None, :]
