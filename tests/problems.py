"""The shared zoo of exact problems: Gaussian and Gaussian-mixture data (closed-form scores), SDEs, devices."""
from __future__ import annotations

import torch

import scoresde


from scoresde.analytic import GaussianMixture  # noqa: F401  (re-exported for the tests)


def gaussian(dim=16, seed=0):
    """One Gaussian N(μ, Σ) in `dim` dimensions with a non-diagonal Σ (eigenvalues in [0.1, 1.5])."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(dim, generator=g, dtype=torch.float64) * 0.5
    Q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    lam = torch.linspace(0.1, 1.5, dim, dtype=torch.float64)
    return GaussianMixture([1.0], mu[None], (Q * lam) @ Q.T[None])


def gaussian_flow(data, sde, x, t0, t1):
    """The probability-flow ODE map x(t0) → x(t1) for one-Gaussian data: in Σ's eigenbasis each coordinate keeps
    (y − α_t μ)/√(α_t² λ + σ_t²) constant."""
    (a0, s0), (a1, s1) = (sde.marginal_coeffs(torch.tensor([t], dtype=torch.float64)) for t in (t0, t1))
    lam, Q, mu = data.lam[0], data.Q[0], data.means[0]
    ratio = ((a1**2 * lam + s1**2) / (a0**2 * lam + s0**2)).sqrt()
    return a1 * mu + ((x - a0 * mu) @ Q * ratio) @ Q.T


def mixture_2d():
    """Four well-separated isotropic Gaussians in 2-D with unequal weights."""
    means = [[-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]]
    covs = [torch.eye(2, dtype=torch.float64) * 0.1] * 4
    return GaussianMixture([0.1, 0.2, 0.3, 0.4], means, torch.stack(covs))


SDES = {
    "vp": lambda: scoresde.VPSDE(),
    "vp_cosine": lambda: scoresde.VPSDE(schedule="cosine"),
    "subvp": lambda: scoresde.subVPSDE(),
    "ve": lambda: scoresde.VESDE(),
}

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
