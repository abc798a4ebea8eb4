import math

import pytest
import torch

import scoresde
from problems import SDES
from tolerance import ulps

F64 = torch.float64


def test_vp_discrete_betas_are_ddpm():
    sde = scoresde.VPSDE()
    ddpm = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
    assert torch.equal(sde.discrete_betas, ddpm)
    assert torch.equal(sde.alphas, 1 - ddpm)
    assert torch.allclose(sde.alphas_cumprod, torch.cumprod(1 - ddpm, 0), rtol=1e-14, atol=0)


def test_vp_discretize_is_ddpm_forward_step(device):
    """x_i = √(1−β_i) x_{i−1} + √β_i z at every step i, with t_i = i/N."""
    sde = scoresde.VPSDE()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=F64, device=device)
    t = torch.arange(1, 1001, dtype=F64, device=device) / 1000
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 3, 2, 2, dtype=F64, generator=g).to(device)
    z = torch.randn(1000, 3, 2, 2, dtype=F64, generator=g).to(device)
    f, G = sde.discretize(x, t)
    expected = (1 - betas).sqrt()[:, None, None, None] * x + betas.sqrt()[:, None, None, None] * z
    # a few roundings of terms as large as |x| + |z| (the result may cancel to near 0): ulps of the terms
    assert torch.allclose(x + f + G[:, None, None, None] * z, expected, rtol=0, atol=ulps(8, x.abs() + z.abs()))


def test_timestep_maps_ddpm_grid_to_indices():
    sde = scoresde.VPSDE()
    t = torch.arange(1, 1001, dtype=torch.float32) / 1000
    assert torch.equal(sde.timestep(t), torch.arange(1000))


@pytest.mark.slow  # simulates the forward SDE: 2 s per SDE
@pytest.mark.parametrize("name", list(SDES))
def test_marginal_prob_matches_simulated_forward_sde(name):
    """Mean and std of 20 000 fine Euler–Maruyama paths agree with marginal_prob at t = 0.05, 0.3, 0.9."""
    sde = SDES[name]()
    g = torch.Generator().manual_seed(0)
    n, steps, x0 = 20_000, 4000, 1.5
    checkpoints = {200: 0.05, 1200: 0.3, 3600: 0.9}
    x, dt = torch.full((n, 1), x0, dtype=F64), 0.9 / 3600
    for i in range(1, steps + 1):
        t = torch.full((n,), (i - 1) * dt, dtype=F64).clamp(min=1e-12)
        drift, diffusion = sde.sde(x, t)
        x = x + drift * dt + diffusion[:, None] * math.sqrt(dt) * torch.randn(x.shape, generator=g, dtype=F64)
        if i in checkpoints:
            t_c = torch.tensor([checkpoints[i]], dtype=F64)
            mean, std = sde.marginal_prob(torch.tensor([[x0]], dtype=F64), t_c)
            # 5 standard errors of the Monte-Carlo estimate, plus 0.5% for the Euler–Maruyama bias.
            se_mean, se_std = std.item() / math.sqrt(n), std.item() / math.sqrt(2 * n)
            assert abs(x.mean().item() - mean.item()) < 5 * se_mean + 5e-3 * abs(mean.item()), (name, t_c)
            assert abs(x.std().item() - std.item()) < 5 * se_std + 5e-3 * std.item(), (name, t_c)
        if i == 3600:
            break


def test_ve_std_is_exact_not_sigma_t():
    """The exact VE std √(σ(t)² − σ_min²) differs from σ(t) at small t (the MC test above checks which is right)."""
    sde = scoresde.VESDE()
    t = torch.tensor([0.05], dtype=F64)
    std, sigma_t = sde.marginal_coeffs(t)[1].item(), sde.sigma(t).item()
    assert std == pytest.approx(math.sqrt(sigma_t**2 - 0.01**2), rel=1e-12)
    assert std < 0.8 * sigma_t  # 25% apart, far outside the MC test's ~1% tolerance


@pytest.mark.parametrize("name", list(SDES))
def test_prior_logp_is_gaussian_log_density(name):
    sde = SDES[name]()
    z = sde.prior_sampling((5, 3, 4), generator=torch.Generator().manual_seed(1), dtype=F64)
    expected = torch.distributions.Normal(0.0, torch.tensor(sde.prior_std, dtype=F64)).log_prob(z).flatten(1).sum(1)
    assert torch.allclose(sde.prior_logp(z), expected, rtol=1e-12)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_beta_is_derivative_of_integral(schedule):
    sde = scoresde.VPSDE(schedule=schedule)
    t = torch.linspace(0.01, 0.99, 50, dtype=F64, requires_grad=True)
    (d,) = torch.autograd.grad(sde.schedule.integral(t).sum(), t)
    assert torch.allclose(d, sde.schedule.beta(t), rtol=1e-10)


def test_cosine_schedule_matches_nichol_dhariwal():
    sde = scoresde.VPSDE(schedule="cosine")
    s = 0.008
    f = lambda t: math.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    for t in (0.1, 0.5, 0.9, 0.999):
        alpha, _ = sde.marginal_coeffs(torch.tensor([t], dtype=F64))
        assert alpha.item() ** 2 == pytest.approx(f(t) / f(0), rel=1e-12)
    paper = [min(1 - f(i / 1000) / f((i - 1) / 1000), 0.999) for i in range(1, 1001)]
    assert torch.allclose(sde.discrete_betas[:-1], torch.tensor(paper[:-1], dtype=F64), rtol=1e-10)
    assert sde.discrete_betas.max().item() <= 0.999 + 1e-12
    # The prior stays N(0, I) within the documented tolerance: alpha_bar(1) < 1e-7.
    assert sde.marginal_coeffs(torch.ones(1, dtype=F64))[0].item() ** 2 < 1e-7
    assert torch.isfinite(sde.coefficients(torch.ones(1, dtype=F64))[1]).all()


@pytest.mark.parametrize("name", list(SDES))
def test_discretize_over_dt_is_exact_transition(name):
    """x_t = x_s + f + G z with s = t − dt reproduces α_t = a α_s and σ_t² = a² σ_s² + G²."""
    sde = SDES[name]()
    t, dt = torch.tensor([0.3, 0.7, 1.0], dtype=F64), 0.05
    one = torch.ones(3, 1, dtype=F64)
    f, G = sde.discretize(one, t, dt)
    a = (1 + f)[:, 0]
    (alpha_s, sigma_s), (alpha_t, sigma_t) = sde.marginal_coeffs(t - dt), sde.marginal_coeffs(t)
    assert torch.allclose(a * alpha_s, alpha_t, rtol=1e-12)
    assert torch.allclose((a * sigma_s) ** 2 + G**2, sigma_t**2, rtol=1e-10)


def test_reverse_sde_and_probability_flow():
    sde = scoresde.VPSDE()
    score = lambda x, t: -x * 2.0
    x, t = torch.randn(4, 2, dtype=F64), torch.full((4,), 0.4, dtype=F64)
    f, g = sde.sde(x, t)
    drift, diffusion = sde.reverse(score).sde(x, t)
    assert torch.allclose(drift, f - g[:, None] ** 2 * score(x, t)) and torch.equal(diffusion, g)
    drift, diffusion = sde.reverse(score, probability_flow=True).sde(x, t)
    assert torch.allclose(drift, f - 0.5 * g[:, None] ** 2 * score(x, t)) and (diffusion == 0).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(beta_min=1.0, beta_max=0.5), "beta_max must be greater than beta_min"),
    (dict(beta_min=5.0, beta_max=5.0), "beta_max must be greater than beta_min"),
    (dict(beta_min=-0.1), "beta_min must be >= 0"),
    (dict(schedule="quadratic"), r"schedule must be one of \['cosine', 'linear'\], got 'quadratic'"),
    (dict(N=0), "N must be an integer >= 1, got 0"),
])
def test_vp_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scoresde.VPSDE(**kwargs)


def test_ve_bad_arguments():
    with pytest.raises(ValueError, match="sigma_max must be greater than sigma_min"):
        scoresde.VESDE(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="sigma_min must be > 0"):
        scoresde.VESDE(sigma_min=0.0)


@pytest.mark.parametrize("t, match", [
    (torch.zeros(4), r"t must lie in \(0, T\]"),
    (torch.full((4,), 1.5), r"t must lie in \(0, T\]"),
    (torch.full((3,), 0.5), "t has batch size 3 but x has batch size 4"),
    (torch.full((4, 1), 0.5), r"t must have shape \[B\]"),
    (torch.ones(4, dtype=torch.long), "t must be a floating-point tensor"),
])
def test_bad_time_and_shapes(t, match):
    with pytest.raises(ValueError, match=match):
        scoresde.VPSDE().marginal_prob(torch.randn(4, 2), t)


def test_x_without_batch_dimension_is_rejected():
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor of shape \[B, \.\.\.\]"):
        scoresde.VPSDE().sde(torch.randn(4), torch.full((4,), 0.5))


def test_user_schedule_and_sde():
    """A schedule needs beta and integral; an SDE needs coefficients and marginal_coeffs."""

    class ConstantSchedule:
        def beta(self, t):
            return torch.full_like(t, 4.0)

        def integral(self, t):
            return 4.0 * t

        def discrete_betas(self, N):
            return torch.full((N,), 4.0 / N, dtype=F64)

    sde = scoresde.VPSDE(schedule=ConstantSchedule())
    alpha, sigma = sde.marginal_coeffs(torch.tensor([0.5], dtype=F64))
    assert alpha.item() == pytest.approx(math.exp(-1.0)) and sigma.item() == pytest.approx(math.sqrt(1 - math.exp(-2.0)))

    class Brownian(scoresde.SDE):
        def coefficients(self, t):
            return torch.zeros_like(t), torch.full_like(t, 2.0)

        def marginal_coeffs(self, t):
            return torch.ones_like(t), 2.0 * t.sqrt()

    mean, std = Brownian(N=10).marginal_prob(torch.ones(2, 1), torch.tensor([0.25, 1.0]))
    assert torch.allclose(std, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="integral"):
        scoresde.VPSDE(schedule=object())


def test_discrete_schedule_round_trips_any_ddpm_betas(device):
    """β(t) = −N log(1 − β_i) on ((i−1)/N, i/N]: discrete_betas round-trips and ᾱ(i/N) is DDPM's ᾱ_i."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=F64) ** 2  # Stable Diffusion's scaled linear
    sde = scoresde.VPSDE(N=1000, schedule=scoresde.DiscreteSchedule(betas))
    assert torch.equal(sde.discrete_betas, betas)
    t = torch.arange(1, 1001, dtype=F64, device=device) / 1000
    alpha, _ = sde.marginal_coeffs(t)
    # exp(−∫β) with ∫β a running sum of N logs, against a running product of N factors: up to N ulps of (1 + ∫β)
    # relatively on either side, in any summation order (∫β = −log ᾱ_N ≈ 5.4 here).
    n_ops = 1000 * (1 - torch.cumprod(1 - betas, 0)[-1].log().item())
    assert torch.allclose(alpha**2, torch.cumprod(1 - betas, 0).to(device), rtol=ulps(n_ops), atol=0)
    assert torch.allclose(sde.schedule.beta(t), -1000 * torch.log1p(-betas).to(device), rtol=1e-13)
    s = torch.tensor([0.0, 0.25, 0.5005, 0.9999], dtype=F64, device=device, requires_grad=True)
    (d,) = torch.autograd.grad(sde.schedule.integral(s).sum(), s)  # away from the knots β = d∫β/dt
    assert torch.allclose(d, sde.schedule.beta(s), rtol=1e-12)


def test_discrete_schedule_rejects_bad_betas():
    with pytest.raises(ValueError, match=r"needs N=3, got N=1000"):
        scoresde.VPSDE(schedule=scoresde.DiscreteSchedule([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"every beta must lie in \(0, 1\)"):
        scoresde.DiscreteSchedule([0.1, 1.0])
    with pytest.raises(ValueError, match="1-D"):
        scoresde.DiscreteSchedule([[0.1, 0.2]])
