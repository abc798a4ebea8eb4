import pytest
import torch

import scoresde
from scoresde.parameterization import PARAMETERIZATIONS, convert, get_score_fn
from scoresde.preconditioning import edm_coefficients
from problems import SDES, gaussian

F64 = torch.float64


@pytest.mark.parametrize("name", list(SDES))
@pytest.mark.parametrize("target", list(PARAMETERIZATIONS))
def test_conversions_recover_ground_truth(name, target, device):
    """From x_t = α x_0 + σ ε with known x_0, ε: each parameterisation converts back to the true ε and x_0."""
    sde = SDES[name]()
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(64, 3, 2, generator=g, dtype=F64), torch.randn(64, 3, 2, generator=g, dtype=F64)
    x0, eps = x0.to(device), eps.to(device)
    t = torch.rand(64, generator=g, dtype=F64).to(device) * 0.99 + 0.01
    alpha, sigma = sde.marginal_coeffs(t)
    a, s = alpha[:, None, None], sigma[:, None, None]
    x = a * x0 + s * eps
    c_skip, c_out, _, _ = edm_coefficients(s / a)  # EDM's F at σ = σ_t/α_t: x₀ = c_skip x/α + c_out F
    truth = {"eps": eps, "x0": x0, "score": -eps / s, "v": a * eps - s * x0, "edm": (x0 - c_skip * x / a) / c_out,
             "edm_vp": eps, "edm_ve": -eps}  # EDM's VP and VE baselines: D = x̃ ∓ σ F with x̃ = x₀ + σ ε
    value = convert(truth["eps"], x, alpha, sigma, "eps", target)
    assert torch.allclose(value, truth[target], rtol=1e-9, atol=1e-9)
    for other in PARAMETERIZATIONS:
        assert torch.allclose(convert(value, x, alpha, sigma, target, other), truth[other], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", list(SDES))
def test_tweedie_x0_from_exact_score_is_posterior_mean(name):
    """score → x_0 gives E[x_0 | x_t] = μ + α Σ C_t⁻¹ (x_t − α μ) for Gaussian data."""
    sde, data = SDES[name](), gaussian(dim=4)
    x = torch.randn(8, 4, dtype=F64) * 2
    t = torch.linspace(0.05, 1.0, 8, dtype=F64)
    alpha, sigma = sde.marginal_coeffs(t)
    x0_hat = convert(data.score(sde, x, t), x, alpha, sigma, "score", "x0")
    mu, cov = data.means[0], data.covs[0]
    for i in range(8):
        C = alpha[i] ** 2 * cov + sigma[i] ** 2 * torch.eye(4, dtype=F64)
        posterior = mu + alpha[i] * cov @ torch.linalg.solve(C, x[i] - alpha[i] * mu)
        assert torch.allclose(x0_hat[i], posterior, rtol=1e-8, atol=1e-8)


def test_discrete_score_fn_uses_integer_steps_and_ddpm_alphas():
    sde = scoresde.VPSDE()
    seen = {}

    def eps_model(x, label):
        seen["label"] = label
        return torch.ones_like(x)

    score_fn = get_score_fn(eps_model, sde, "eps", continuous=False)
    t = torch.tensor([1e-3, 0.5, 1.0])
    score = score_fn(torch.zeros(3, 2), t)
    assert seen["label"].dtype == torch.long and seen["label"].tolist() == [0, 499, 999]
    abar = sde.alphas_cumprod[[0, 499, 999]]  # σ from float64 ᾱ: in float32, 1 − ᾱ_0 = 1e-4 is off by 4e-5
    assert torch.allclose(score, (-1 / (1 - abar).sqrt()).float()[:, None].expand(3, 2), rtol=1e-6, atol=0)


def test_continuous_score_fn_passes_t_unchanged():
    sde = scoresde.VESDE()
    score_fn = get_score_fn(lambda x, t: t[:, None] * torch.ones_like(x), sde, "eps")
    t = torch.tensor([0.25, 0.75])
    assert torch.allclose(score_fn(torch.zeros(2, 3), t), -t[:, None] / sde.marginal_coeffs(t)[1][:, None])


def test_bad_parameterization_names():
    with pytest.raises(ValueError, match=r"parameterization must be one of \['edm', 'edm_ve', 'edm_vp', 'eps', 'score', 'v', 'x0'\], got 'noise'"):
        get_score_fn(lambda x, t: x, scoresde.VPSDE(), "noise")
    with pytest.raises(ValueError, match="continuous=False needs an SDE with discrete DDPM betas"):
        get_score_fn(lambda x, t: x, scoresde.VESDE(), "eps", continuous=False)
