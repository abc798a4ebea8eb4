"""SR3 (scoresde.sr3) against closed forms.

Data: x₀ ~ N(μ, Σ) in d = 4 coordinates, read as a 2 × 2 image, and the super-resolution observation D x₀ (the
mean of the 4 pixels, i.e. down-sampling by 2 to one pixel). The posterior p(x₀ | D x₀ = d) is Gaussian,
N(m_d, C_d) with C_d singular (rank 3), so the exact conditional noise predictor, written in SR3's own variable
γ, is ε*(x_γ, γ, y) = σ Λ⁻¹ (x_γ − γ m_d) with σ² = 1 − γ² and Λ = γ² C_d + σ² I. Every fixed-step sampler is
affine in the prior draw and the noise here, so its exact output mean and covariance come from unit impulses
(`exact_moments`, tests/test_exact_affine.py) with no Monte Carlo.
"""
import math

import numpy as np
import pytest
import torch

import scoresde
from scoresde import sr3
from scoresde.parameterization import get_score_fn
from scoresde.sampling import get_sampler
from scoresde.schedules import DiscreteSchedule
from scoresde.sde import VESDE, VPSDE
from test_exact_affine import exact_moments

F64 = torch.float64
D = 4
MU = torch.tensor([0.5, -0.3, 0.2, 0.8], dtype=F64)
_A = torch.tensor([[1.0, 0.4, 0.0, 0.2], [0.3, 0.8, 0.1, 0.0], [0.0, 0.5, 0.9, 0.3], [0.2, 0.0, 0.4, 0.7]], dtype=F64)
SIGMA = _A @ _A.T + 0.1 * torch.eye(D, dtype=F64)
DOWN = torch.full((1, D), 1 / D, dtype=F64)  # D: the mean of the 2 x 2 pixels


def posterior(d: float):
    """m_d, C_d of x₀ | D x₀ = d (Gaussian conditioning)."""
    gain = SIGMA @ DOWN.T / (DOWN @ SIGMA @ DOWN.T)
    return MU + (gain * (d - DOWN @ MU)).flatten(), SIGMA - gain @ DOWN @ SIGMA


def exact_model(x, gamma, y):
    """ε*(x_γ, γ, y) for flat x [B, 4]; y [B, 4] is the up-sampled observation (every entry equals d)."""
    gain = SIGMA @ DOWN.T / (DOWN @ SIGMA @ DOWN.T)
    m = MU + (y[:, :1] - (DOWN @ MU)) * gain.flatten()  # [B, 4]
    C = SIGMA - gain @ DOWN @ SIGMA
    g = gamma.to(F64)[:, None, None]
    s2 = 1 - g ** 2
    lam = g ** 2 * C + s2 * torch.eye(D, dtype=F64)  # [B, 4, 4]
    rhs = (x - g[:, :, 0] * m)[..., None]
    return (s2.sqrt() * torch.linalg.solve(lam, rhs))[..., 0]


def test_gamma_density_is_the_documented_mixture_of_uniforms():
    """P(γ ∈ (γ_i, γ_{i−1})) = 1/N for every step, uniform inside: the empirical CDF stays within the KS bound."""
    sde = VPSDE(beta_max=5.0, N=6)  # DDPM betas up to 5/6
    n = 40_000
    g = sr3.sample_gamma(sde, n, torch.Generator().manual_seed(0), dtype=F64)
    gammas = sr3.gamma_schedule(sde)
    assert torch.allclose(sr3.gamma_cdf(sde, gammas), torch.linspace(1, 0, 7, dtype=F64), atol=1e-12)
    # Each interval's share within 4 binomial standard errors of 1/N.
    counts = torch.tensor(
        [((g > gammas[i]) & (g <= gammas[i - 1])).sum().item() for i in range(1, 7)], dtype=F64)
    se = math.sqrt(n * (1 / 6) * (5 / 6))
    assert (counts - n / 6).abs().max() < 4 * se
    # Kolmogorov–Smirnov against the piecewise-linear CDF (1.95/√n: the 0.1 % critical value).
    empirical = torch.arange(1, n + 1, dtype=F64) / n
    ks = (empirical - sr3.gamma_cdf(sde, g.sort().values)).abs().max().item()
    assert ks < 1.95 / math.sqrt(n), ks


def test_gamma_density_ks_detects_a_non_uniform_draw_inside_intervals():
    """The KS check above has power: u² instead of u inside each interval fails it."""
    sde, n = VPSDE(beta_max=5.0, N=6), 40_000
    gen = torch.Generator().manual_seed(0)
    gammas = sr3.gamma_schedule(sde)
    i = torch.randint(1, 7, (n,), generator=gen)
    u = torch.rand(n, generator=gen, dtype=F64) ** 2
    g = gammas[i] + u * (gammas[i - 1] - gammas[i])
    empirical = torch.arange(1, n + 1, dtype=F64) / n
    assert (empirical - sr3.gamma_cdf(sde, g.sort().values)).abs().max().item() > 1.95 / math.sqrt(n)


def test_sr3_loss_of_the_exact_model_equals_its_floor():
    """E ‖ε − ε*‖²/d = E_γ [1 − σ² tr(Λ⁻¹)/d], integrated over the γ density (Gauss–Legendre on each interval)."""
    sde = VPSDE(beta_max=4.0, N=5)
    gen = torch.Generator().manual_seed(1)
    n = 20_000
    x0 = MU + torch.randn(n, D, generator=gen, dtype=F64) @ torch.linalg.cholesky(SIGMA).T
    y = (x0 @ DOWN.T).expand(n, D)  # U D x₀: every pixel holds the mean
    losses = sr3.SR3Loss(sde).per_sample(exact_model, x0, y, gen)
    C = posterior(0.0)[1]
    nodes, weights = (torch.tensor(v, dtype=F64) for v in np.polynomial.legendre.leggauss(20))
    gammas, floor = sr3.gamma_schedule(sde), 0.0
    for i in range(1, sde.N + 1):
        lo, hi = gammas[i].item(), gammas[i - 1].item()
        for node, w in zip(nodes, weights):
            g = lo + (hi - lo) * (node.item() + 1) / 2
            s2 = 1 - g * g
            lam = g * g * C + s2 * torch.eye(D, dtype=F64)
            floor += (w.item() / 2) / sde.N * (1 - s2 * torch.linalg.inv(lam).trace().item() / D)
    se = (losses.std() / math.sqrt(n)).item()
    assert abs(losses.mean().item() - floor) < 4 * se, (losses.mean().item(), floor, se)
    assert abs(1.0 - floor) > 20 * se  # the floor is far from a model that predicts 0


class ExactSR3:
    """A noise-level score (get_score_fn(noise_level=True)) of the exact model, with the observation d bound."""

    def __init__(self, sde, d):
        self.d = d
        self.score = get_score_fn(exact_model, sde, "eps", noise_level=True)

    def __call__(self, sampler, sde, batch):
        y = torch.full((batch, D), self.d, dtype=F64)
        return sampler(sr3.condition_on(self.score, y), sde, (batch, D), dtype=F64)[0]


def _errors(sde, steps, monkeypatch, d=0.4):
    """‖mean − m_d‖ and ‖cov − C_d‖ of SR3's Algorithm 2 (ancestral, σ² = β) on `steps` steps of `sde`."""
    run = ExactSR3(sde, d)
    sampler = get_sampler("ancestral", variance="beta", steps=steps, eps=1 / steps, progress=False)
    mean, cov = exact_moments(monkeypatch, lambda b: run(sampler, sde, b), D)
    m, C = posterior(d)
    return (mean - m).norm().item(), (cov - C).norm().item()


@pytest.mark.parametrize("schedule", ["linear", "cosine", "discrete"])
def test_algorithm_2_reaches_the_exact_posterior_on_any_inference_schedule(schedule, monkeypatch):
    """The same noise-level model, sampled on the training schedule or on others it never saw, reaches
    p(x | D x) exactly as the steps grow: the error of the exact moments shrinks and ends below 1e-2."""
    def make(steps):
        if schedule == "discrete":  # explicit inference betas, as SR3 tunes them: linear 1e-4 … 0.5 over K steps
            return VPSDE(schedule=DiscreteSchedule(torch.linspace(1e-4, 0.5 * 100 / steps, steps).clamp(max=0.5)),
                         N=steps)
        return VPSDE(schedule=schedule, N=steps)
    errors = [_errors(make(k), k, monkeypatch) for k in (25, 100, 400)]
    means, covs = zip(*errors)
    # The covariance error is the discretisation's: first order, about 4 times smaller per 4 times the steps.
    assert covs[0] > 3 * covs[1] > 9 * covs[2] and covs[2] < 5e-3, errors
    # The mean is exact up to the prior's mismatch (x_T ~ N(0, I) where p_T has mean α_T m_d): < 1e-4 at any K.
    assert max(means) < 1e-4, errors


def test_algorithm_2_is_the_ancestral_sampler_with_beta(monkeypatch):
    """A literal SR3 Algorithm 2 on explicit betas and scoresde's ancestral sampler (variance="beta", eps = 1/K)
    take the same path from the same noise."""
    K = 12
    betas = torch.linspace(1e-3, 0.3, K, dtype=F64)
    alphas, abar = 1 - betas, torch.cumprod(1 - betas, 0)
    sde = VPSDE(schedule=DiscreteSchedule(betas), N=K)
    y = torch.full((3, D), 0.4, dtype=F64)

    def model(x, gamma, y):  # any smooth function of (x, γ, y)
        return torch.tanh(x) * gamma[:, None] + 0.3 * y - x * (1 - gamma[:, None])

    score = sr3.condition_on(get_score_fn(model, sde, "eps", noise_level=True), y)
    sampler = get_sampler("ancestral", variance="beta", steps=K, eps=1 / K, progress=False)
    out = sampler(score, sde, (3, D), generator=torch.Generator().manual_seed(5), dtype=F64)[0]

    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, D, generator=g, dtype=F64)
    for i in range(K - 1, -1, -1):  # SR3 Algorithm 2, t = K … 1 (0-based i)
        gamma = torch.full((3,), abar[i].sqrt().item(), dtype=F64)
        eps = model(x, gamma, y)
        z = torch.randn(3, D, generator=g, dtype=F64) if i > 0 else torch.zeros_like(x)
        x = (x - (1 - alphas[i]) / (1 - abar[i]).sqrt() * eps) / alphas[i].sqrt() + (1 - alphas[i]).sqrt() * z
    assert torch.allclose(out, x, rtol=1e-10, atol=1e-12)


def test_noise_level_score_needs_a_continuous_vp_sde():
    with pytest.raises(ValueError, match="noise_level=True conditions on γ = α_t.*VESDE"):
        get_score_fn(exact_model, VESDE(), noise_level=True)
    with pytest.raises(ValueError, match="continuous=False"):
        get_score_fn(exact_model, VPSDE(), continuous=False, noise_level=True)


def test_sr3_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="DDPM betas in"):
        sr3.SR3Loss(VPSDE(N=6))  # β_max / N = 3.3: no noise levels
    with pytest.raises(ValueError, match="norm must be 1 or 2"):
        sr3.SR3Loss(VPSDE(), norm=3)
    with pytest.raises(ValueError, match="VPSDE"):
        sr3.SR3Loss(VESDE())
    with pytest.raises(TypeError, match=r"y must be the up-sampled low-resolution images, shaped like x0 \(3, 4\)"):
        sr3.SR3Loss(VPSDE())(exact_model, torch.zeros(3, D), torch.zeros(3, 2))
