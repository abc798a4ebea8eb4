"""EDM's preconditioning as a parameterisation: unit-variance targets, the exact denoiser, exact conversions."""
import math

import pytest
import torch

import scoresde
from scoresde.parameterization import PARAMETERIZATIONS, convert, get_score_fn
from scoresde.preconditioning import edm_coefficients, loss_weight

F64 = torch.float64
EPS = torch.finfo(F64).eps
SIGMAS = torch.logspace(math.log10(0.002), math.log10(80.0), 25, dtype=F64)
SDES = {"vp": lambda: scoresde.VPSDE(), "subvp": lambda: scoresde.subVPSDE(), "ve": lambda: scoresde.VESDE()}


@pytest.mark.parametrize("sigma_data", [0.5, 0.1, 2.0])
def test_the_ideal_training_target_has_unit_variance_at_every_sigma(sigma_data):
    """Data x₀ ~ N(0, σ_d²), y = x₀ + σ n: the target F* = (x₀ − c_skip y)/c_out has variance
    ((1 − c_skip)² σ_d² + c_skip² σ²)/c_out² = 1, and λ(σ) = 1/c_out² (Karras et al. 2022, App. B.6)."""
    c_skip, c_out, c_in, _ = edm_coefficients(SIGMAS, sigma_data)
    variance = ((1 - c_skip) ** 2 * sigma_data**2 + c_skip**2 * SIGMAS**2) / c_out**2
    torch.testing.assert_close(variance, torch.ones_like(SIGMAS), rtol=0, atol=50 * EPS)
    torch.testing.assert_close(c_in**2 * (sigma_data**2 + SIGMAS**2), torch.ones_like(SIGMAS), rtol=0, atol=50 * EPS)
    torch.testing.assert_close(loss_weight(SIGMAS, sigma_data) * c_out**2, torch.ones_like(SIGMAS), rtol=50 * EPS, atol=0)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_the_exact_network_gives_the_exact_score_on_every_sde(sde_name):
    """The ideal F of Gaussian data N(0, s² I), fed EDM's inputs (c_in x_t/α_t, ¼ ln σ), makes get_score_fn
    return the exact score −x/(α²s² + σ²) of p_t, and D the posterior mean, at every t. The data's s differs from
    the preconditioner's σ_d: for s = σ_d the ideal F is 0 (D = c_skip x̃), which no coefficient error would change."""
    sigma_data, data_std = 0.7, 1.3
    sde = SDES[sde_name]()

    def ideal(u, c_noise):  # reads σ back from c_noise and x̃ from c_in x̃
        s = torch.exp(4 * c_noise)[:, None]
        c_skip, c_out, c_in, _ = edm_coefficients(s, sigma_data)
        x_tilde = u / c_in
        return (data_std**2 / (data_std**2 + s**2) * x_tilde - c_skip * x_tilde) / c_out

    score = get_score_fn(ideal, sde, "edm", sigma_data=sigma_data)
    assert score.parameterization == "edm" and score.continuous
    t = torch.linspace(0.01, 1.0, 12, dtype=F64)
    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(0), dtype=F64) * 3
    alpha, sigma = sde.marginal_coeffs(t)
    exact = -x / (alpha**2 * data_std**2 + sigma**2)[:, None]
    # score = (α D − x)/σ²: the subtraction is of terms of size |x|, so its round-off scale is |x|/σ² per sample
    scale = x.abs().amax(1, keepdim=True) / sigma[:, None] ** 2
    assert ((score(x, t) - exact).abs() <= 200 * EPS * scale).all()


@pytest.mark.parametrize("other", [p for p in PARAMETERIZATIONS if p != "edm"])
def test_conversions_to_and_from_edm_are_exact_inverses(other):
    g = torch.Generator().manual_seed(1)
    x, value = torch.randn(6, 4, generator=g, dtype=F64), torch.randn(6, 4, generator=g, dtype=F64)
    sde = scoresde.VPSDE()
    alpha, sigma = sde.marginal_coeffs(torch.linspace(0.05, 0.95, 6, dtype=F64))
    back = convert(convert(value, x, alpha, sigma, "edm", other, 0.3), x, alpha, sigma, other, "edm", 0.3)
    torch.testing.assert_close(back, value, rtol=0, atol=1e4 * EPS * value.abs().max().item())
    x0 = convert(value, x, alpha, sigma, "edm", "x0", 0.3)  # D = c_skip x̃ + c_out F, by its definition
    c_skip, c_out, _, _ = edm_coefficients((sigma / alpha)[:, None], 0.3)
    torch.testing.assert_close(x0, c_skip * x / alpha[:, None] + c_out * value, rtol=0, atol=100 * EPS * x0.abs().max().item())


def test_edm_parameterization_refuses_what_it_cannot_condition_on():
    sde = scoresde.VPSDE()
    for kwargs in (dict(continuous=False), dict(learned_variance=True), dict(noise_level=True)):
        with pytest.raises(ValueError, match="parameterization='edm' conditions the network on EDM's σ"):
            get_score_fn(lambda x, t: x, sde, "edm", **kwargs)
    with pytest.raises(ValueError, match="sigma_data must be > 0"):
        get_score_fn(lambda x, t: x, sde, "edm", sigma_data=0.0)
    from scoresde.config import default_config, validate
    c = default_config()
    c.model.parameterization, c.model.sigma_data = "edm", -1.0
    with pytest.raises(ValueError, match=r"config.model.sigma_data must be > 0, got -1.0"):
        validate(c)
    c.model.sigma_data, c.loss.continuous = 0.5, False
    with pytest.raises(ValueError, match="config.model.parameterization='edm' needs config.loss.continuous=True"):
        validate(c)


def test_vp_baseline_on_scoresde_vp_is_the_eps_network_of_ddpm_steps():
    """On VPSDE(β 0.1 → 20), σ_t/α_t is EDM's σ_vp(t): the VP baseline's network sees x_t itself (c_in/α_t = 1) and
    c_noise = 999 t, and its F is ε, so its score is the ε-network's."""
    from scoresde.preconditioning import vp_sigma, vp_sigma_inv

    sde = scoresde.VPSDE()
    t = torch.linspace(1e-3, 1.0, 16, dtype=F64)
    alpha, sigma = sde.marginal_coeffs(t)
    # σ/α against the closed form √(expm1(½β_d t² + β_min t)); ~10 roundings, relative
    torch.testing.assert_close(sigma / alpha, vp_sigma(t), rtol=200 * EPS, atol=0)
    torch.testing.assert_close(vp_sigma_inv(vp_sigma(t)), t, rtol=1e3 * EPS, atol=0)
    seen = {}

    def net(u, label):
        seen["u"], seen["label"] = u, label
        return torch.tanh(u) * label[:, None] / 1000

    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    vp = get_score_fn(net, sde, "edm_vp")(x, t)
    torch.testing.assert_close(seen["u"], x, rtol=0, atol=100 * EPS * x.abs().max().item())
    # c_noise = 999 σ_vp⁻¹(σ_t/α_t): the inverse's cancellation near t = 0 costs ~1/t ulps of t
    torch.testing.assert_close(seen["label"], 999 * t, rtol=1e4 * EPS, atol=0)
    eps = get_score_fn(lambda u, label: net(u, 999 * label), sde, "eps")(x, t)
    # F → D = x̃ − σF → ε = (x − α D)/σ_t cancels terms of size |x|: round-off |x|/σ_t in ε, |x|/σ_t² in the score;
    # plus the label's relative error, carried through F
    bound = 200 * EPS * x.abs().amax(1, keepdim=True) / sigma[:, None] ** 2 + 1e4 * EPS * eps.abs()
    assert ((vp - eps).abs() <= bound).all()


def test_ve_baseline_on_scoresde_ve_predicts_minus_eps():
    """On VESDE (α = 1), the VE baseline's network sees x_t and ln(σ/2), and D = x + σ F: F = −ε."""
    sde = scoresde.VESDE()
    t = torch.linspace(0.01, 1.0, 10, dtype=F64)
    _, sigma = sde.marginal_coeffs(t)
    seen = {}

    def net(u, label):
        seen["u"], seen["label"] = u, label
        return torch.sin(u) + label[:, None]

    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(3), dtype=F64) * 5
    ve = get_score_fn(net, sde, "edm_ve")(x, t)
    assert torch.equal(seen["u"], x)
    torch.testing.assert_close(seen["label"], (sigma / 2).log(), rtol=0, atol=50 * EPS)
    minus_eps = get_score_fn(lambda u, label: -net(u, (sigma / 2).log()), sde, "eps")(x, t)
    torch.testing.assert_close(ve, minus_eps, rtol=50 * EPS, atol=0)


@pytest.mark.parametrize("name", ["edm_vp", "edm_ve"])
@pytest.mark.parametrize("sde_name", list(SDES))
def test_baselines_give_the_exact_score_on_every_sde(name, sde_name):
    """The ideal F of Gaussian data N(0, s² I) under EDM's VP and VE baselines gives the exact score on VP, sub-VP
    and VE: the same check as EDM's own preconditioning."""
    from scoresde.preconditioning import PRECONDITIONINGS

    data_std, sde = 1.3, SDES[sde_name]()
    t = torch.linspace(0.01, 1.0, 12, dtype=F64)
    alpha, sigma = sde.marginal_coeffs(t)
    s = (sigma / alpha)[:, None]

    def ideal(u, c_noise):  # σ is known per row here; the exact D of N(0, s²) at x̃ = u / c_in
        c_skip, c_out, c_in, _ = PRECONDITIONINGS[name](s, 0.5)
        x_tilde = u / c_in
        return (data_std**2 / (data_std**2 + s**2) * x_tilde - c_skip * x_tilde) / c_out

    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(0), dtype=F64) * 3
    exact = -x / (alpha**2 * data_std**2 + sigma**2)[:, None]
    scale = x.abs().amax(1, keepdim=True) / sigma[:, None] ** 2
    assert ((get_score_fn(ideal, sde, name)(x, t) - exact).abs() <= 200 * EPS * scale).all()
