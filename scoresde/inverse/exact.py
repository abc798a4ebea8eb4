"""Exact posteriors of Gaussian and Gaussian-mixture priors under a linear-Gaussian observation y = A x + σ_y ε.

For p(x) = Σ_k w_k N(μ_k, Σ_k) the posterior is a mixture again (Bishop 2006, Eqs. 2.113–2.117, per component):
    S_k = A Σ_k Aᵀ + σ_y² I,   K_k = Σ_k Aᵀ S_k⁻¹,   μ'_k = μ_k + K_k (y − A μ_k),   Σ'_k = Σ_k − K_k A Σ_k,
    w'_k ∝ w_k N(y; A μ_k, S_k).
With σ_y = 0 the Σ'_k are singular (A x = y holds exactly); rows of A that are zero (unobserved pixels of a mask)
carry no information and are dropped. What the solvers are measured against in the tests and benchmarks.
"""
from __future__ import annotations

import math

import torch

from .._utils import check_positive_int, check_real
from .operators import LinearOperator


class Posterior:
    """Σ_k w_k N(μ_k, Σ_k) on flat samples [D], Σ_k positive semi-definite (float64)."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor):
        self.weights, self.means, self.covs = weights, means, (covs + covs.transpose(1, 2)) / 2
        lam, Q = torch.linalg.eigh(self.covs)
        # eigenvalues at round-off level (the directions A x = y fixes, when σ_y = 0) are exactly zero
        floor = 100 * lam.shape[-1] * torch.finfo(lam.dtype).eps * lam.abs().amax(-1, keepdim=True)
        self.lam, self.Q = torch.where(lam > floor, lam, torch.zeros_like(lam)), Q

    def mean(self) -> torch.Tensor:
        return (self.weights[:, None] * self.means).sum(0)

    def cov(self) -> torch.Tensor:
        m = self.mean()
        second = (self.weights[:, None, None] * (self.covs + self.means[:, :, None] * self.means[:, None, :])).sum(0)
        return second - m[:, None] * m[None, :]

    def sample(self, n: int, generator=None) -> torch.Tensor:
        """n exact samples [n, D] (float64, CPU)."""
        n = check_positive_int(n, "n")
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return self.means[k] + torch.einsum("nde,ne->nd", self.Q[k], self.lam[k].sqrt() * z)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """p(k | x) under this mixture [n, K], on the subspace where the covariances live (their common range)."""
        total = self.covs.sum(0)
        lam, Q = torch.linalg.eigh(total)
        R = Q[:, lam > lam.max() * 1e-9]  # orthonormal basis of the range
        covs = R.T @ self.covs @ R
        diff = (x.double().flatten(1)[:, None, :] - self.means[None]) @ R  # [n, K, r]
        L = torch.linalg.cholesky(covs)
        sol = torch.linalg.solve_triangular(L[None], diff[..., None], upper=False)[..., 0]
        logp = (self.weights.log()[None] - 0.5 * (sol**2).sum(-1)
                - torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(-1)[None])
        return torch.softmax(logp, dim=1)


def posterior(prior, operator, y: torch.Tensor, sigma_y: float, shape=None) -> Posterior:
    """The exact posterior p(x | y) for one observation y (one sample's shape) of a GaussianMixture prior
    (scoresde.analytic; a Gaussian is one component). operator: a LinearOperator (with `shape`, one sample's
    shape of x) or a dense matrix [m, D]."""
    sigma_y = check_real(sigma_y, "sigma_y", low=0)
    if isinstance(operator, LinearOperator):
        operator.bind(tuple(shape) if shape is not None else operator.shape or (prior.dim,))
        A = operator.matrix(operator.shape)
    else:
        A = torch.as_tensor(operator, dtype=torch.float64)
    y = y.double().flatten().cpu()
    if A.shape != (y.numel(), prior.dim):
        raise ValueError(f"operator must be a matrix [{y.numel()}, {prior.dim}] for y of {y.numel()} values and a "
                         f"prior in {prior.dim} dimensions, got {tuple(A.shape)}")
    rows = A.abs().sum(1) > 0
    A, y = A[rows], y[rows]
    S = A @ prior.covs @ A.T + sigma_y**2 * torch.eye(len(y), dtype=torch.float64)  # [K, m, m]
    L, info = torch.linalg.cholesky_ex(S)
    if bool((info != 0).any()):
        raise ValueError("A Σ Aᵀ + σ_y² I is singular: with σ_y = 0 the exact posterior needs A of full row rank "
                         "(after dropping zero rows)")
    resid = y[None] - prior.means @ A.T  # [K, m]
    K = torch.linalg.solve(S, A @ prior.covs).transpose(1, 2)  # Σ Aᵀ S⁻¹, [K, D, m]
    means = prior.means + (K @ resid[..., None])[..., 0]
    covs = prior.covs - K @ A @ prior.covs
    sol = torch.linalg.solve_triangular(L, resid[..., None], upper=False)[..., 0]
    logw = (prior.weights.log() - 0.5 * (sol**2).sum(-1) - torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(-1)
            - 0.5 * len(y) * math.log(2 * math.pi))
    return Posterior(torch.softmax(logw, 0), means, covs)
