"""The shared zoo of exact problems: Gaussian and Gaussian-mixture data (closed-form scores), SDEs, devices."""
from __future__ import annotations

import math

import torch

import scoresde
from scoresde._utils import append_dims
from scoresde.sampling import get_sampler


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


def isotropic_ddpm_score(sde, s2):
    """The discrete-time (DDPM) score of N(0, s² I) data: −x/c_t, c_t = ᾱ_i s² + 1 − ᾱ_i at the step of t."""
    abar = sde.alphas_cumprod

    def score(x, t):
        a = abar.to(x.device)[sde.timestep(t)].to(x.dtype)
        return -x / append_dims(a * s2 + 1 - a, x.ndim)

    return scoresde.Score(score, continuous=False)


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


def ode_flow_errors(name, sde, steps_list, **options):
    """Max error at eps of a deterministic sampler against the exact probability-flow map, for 1-D Gaussian data.

    For Gaussian p_t the flow keeps (x_t − m_t)/√C_t constant, so x_eps is known in closed form. Returns the
    errors and the measured orders log2(e_K / e_2K) between consecutive step counts (which should double).
    """
    data = GaussianMixture([1.0], [[0.5]], [[[0.3]]])
    (a_e, s_e), (a_T, s_T) = (sde.marginal_coeffs(torch.tensor([t], dtype=torch.float64)) for t in (sde.sampling_eps, sde.T))
    errors = []
    for steps in steps_list:
        sampler = get_sampler(name, steps=steps, denoise=False, progress=False, return_trajectory=True, **options)
        x, _, traj = sampler(data.score_fn(sde), sde, (64, 1), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        exact = a_e * 0.5 + ((a_e**2 * 0.3 + s_e**2) / (a_T**2 * 0.3 + s_T**2)).sqrt() * (traj[0] - a_T * 0.5)
        errors.append((x - exact).abs().max().item())
    return errors, [math.log2(errors[i] / errors[i + 1]) for i in range(len(errors) - 1)]
