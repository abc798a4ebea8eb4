"""EDM's σ-time process σ(t) = t: closed forms, its Karras grid by default, Heun's second order, EDM's presets."""
import math

import pytest
import torch

import scoresde
from scoresde.sampling import get_sampler

F64 = torch.float64
EPS = torch.finfo(F64).eps


def test_the_process_is_x0_plus_t_noise():
    sde = scoresde.EDMSDE()
    assert (sde.T, sde.sampling_eps, sde.prior_std) == (80.0, 0.002, 80.0)
    t = torch.tensor([0.002, 0.5, 7.0, 80.0], dtype=F64)
    alpha, sigma = sde.marginal_coeffs(t)
    f, g = sde.coefficients(t)
    assert torch.equal(alpha, torch.ones_like(t)) and torch.equal(sigma, t) and torch.equal(f, torch.zeros_like(t))
    torch.testing.assert_close(g**2, 2 * t, rtol=4 * EPS, atol=0)  # g² = dσ²/dt
    a, v = sde.transition_coeffs(t, t / 2)  # x_t | x_s: variance t² − s²
    torch.testing.assert_close(v, t**2 - (t / 2) ** 2, rtol=8 * EPS, atol=0)
    assert torch.equal(a, torch.ones_like(t))


def test_samplers_use_the_karras_grid_on_it_unless_told_otherwise():
    sde, steps, rho = scoresde.EDMSDE(), 10, 7.0
    i = torch.arange(steps, dtype=F64) / (steps - 1)
    karras = (80.0 ** (1 / rho) + i * (0.002 ** (1 / rho) - 80.0 ** (1 / rho))) ** rho  # Karras et al. 2022, Eq. 5
    grid = get_sampler("euler_maruyama", steps=steps).time_grid(sde)
    torch.testing.assert_close(grid, karras, rtol=100 * EPS, atol=0)
    uniform = get_sampler("euler_maruyama", steps=steps, grid="uniform").time_grid(sde)
    torch.testing.assert_close(uniform, torch.linspace(80.0, 0.002, steps, dtype=F64), rtol=100 * EPS, atol=0)


def test_edm_heun_is_second_order_on_gaussian_data():
    """N(0, s²): the exact score makes the deterministic sampler linear, x₀ = c_K x_T. The exact flow gives
    c = √(s² + σ_min²)/√(s² + σ_max²), times Tweedie's s²/(s² + σ_min²) at the end; Heun's error falls as K⁻²."""
    s, sde = 0.5, scoresde.EDMSDE()
    score = lambda x, t: -x / (s**2 + t[:, None] ** 2)  # noqa: E731
    exact = math.sqrt(s**2 + 0.002**2) / math.sqrt(s**2 + 80.0**2) * s**2 / (s**2 + 0.002**2)
    from scoresde.score import CountedScore
    counted, errors = CountedScore(score), []
    for steps in (40, 80, 160):
        sampler = get_sampler("edm", steps=steps, progress=False)
        ts = sampler.time_grid(sde)
        x = torch.ones(1, 1, dtype=F64)  # x_T: the output is c_K
        c = sampler.prepare(sde, ts)
        c["t"] = ts  # the base loop's table of times
        for k in range(len(ts) - 1):
            x = sampler.step(counted, sde, x, k, c, None)
        x = x + ts[-1] ** 2 * score(x, ts[-1:])  # Tweedie at σ_min
        errors.append(abs(x.item() - exact))
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(3.0 < r < 5.0 for r in ratios), (errors, ratios)  # order 2: halving the step quarters the error


def test_edm_presets_by_name():
    sampler = get_sampler("edm", preset="imagenet64")
    assert (sampler.S_churn, sampler.S_tmin, sampler.S_tmax, sampler.S_noise) == (40.0, 0.05, 50.0, 1.003)
    assert sampler.stochastic and not get_sampler("edm").stochastic
    assert get_sampler("edm", preset="imagenet64", S_noise=1.0).S_noise == 1.0  # an explicit setting wins
    with pytest.raises(ValueError, match=r"preset must be one of \['deterministic', 'imagenet64'\], got 'cifar'"):
        get_sampler("edm", preset="cifar")
