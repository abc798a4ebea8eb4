import math

import pytest
import torch
from scipy import integrate

import scoresde
from scoresde.losses import DDPMLoss, DSMLoss
from scoresde.parameterization import get_score_fn
from problems import SDES, gaussian

F64 = torch.float64


class TinyEpsNet(torch.nn.Module):
    """A small ε-network: any function of (x, t) will do for the identities below."""

    def __init__(self, dim):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(dim + 1, 32), torch.nn.Tanh(), torch.nn.Linear(32, dim))

    def forward(self, x, t):
        return self.net(torch.cat([x, t.to(x.dtype)[:, None] / 1000 if not t.is_floating_point() else t[:, None]], 1))


@pytest.mark.parametrize("name", ["vp", "vp_cosine", "subvp", "ve"])
def test_simple_weighting_is_l_simple(name, device):
    """Same x_0, t, ε: σ²-weighted DSM of an ε-network equals ‖ε − ε_θ(x_t, t)‖² (Ho et al. 2020, Eq. 14)."""
    sde = SDES[name]()
    torch.manual_seed(0)
    net = TinyEpsNet(5).to(device, F64)
    x0, z = torch.randn(256, 5, dtype=F64, device=device), torch.randn(256, 5, dtype=F64, device=device)
    t = torch.rand(256, dtype=F64, device=device) * 0.999 + 1e-3
    loss = DSMLoss(sde, "simple")(get_score_fn(net, sde, "eps"), x0, t=t, noise=z)
    mean, std = sde.marginal_prob(x0, t)
    l_simple = ((z - net(mean + std[:, None] * z, t)) ** 2).mean()
    assert loss.item() == pytest.approx(l_simple.item(), rel=1e-12)


@pytest.mark.parametrize("name", ["vp", "vp_cosine"])
def test_v_weighting_is_the_v_prediction_loss(name, device):
    """Same x_0, t, ε: σ²/α²-weighted DSM of a v-network equals ‖v − v_θ(x_t, t)‖², v = α ε − σ x_0 (VP)."""
    sde = SDES[name]()
    torch.manual_seed(0)
    net = TinyEpsNet(5).to(device, F64)  # read as a v-network
    x0, z = torch.randn(256, 5, dtype=F64, device=device), torch.randn(256, 5, dtype=F64, device=device)
    t = torch.rand(256, dtype=F64, device=device) * 0.999 + 1e-3
    loss = DSMLoss(sde, "v")(get_score_fn(net, sde, "v"), x0, t=t, noise=z)
    alpha, sigma = (c[:, None] for c in sde.marginal_coeffs(t))
    v = alpha * z - sigma * x0
    assert loss.item() == pytest.approx(((v - net(alpha * x0 + sigma * z, t)) ** 2).mean().item(), rel=1e-12)


def test_ddpm_loss_is_algorithm_1():
    sde = scoresde.VPSDE()
    torch.manual_seed(0)
    net = TinyEpsNet(3).double()
    x0, z = torch.randn(100, 3, dtype=F64), torch.randn(100, 3, dtype=F64)
    i = torch.randint(0, 1000, (100,))
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=F64), 0)[i][:, None]
    expected = ((z - net(abar.sqrt() * x0 + (1 - abar).sqrt() * z, i)) ** 2).mean()
    assert DDPMLoss(sde)(net, x0, index=i, noise=z).item() == pytest.approx(expected.item(), rel=1e-12)


def _analytic_floor(sde, data, weighting, eps):
    """E_t λ(t) (D/σ_t² − tr C_t⁻¹) / D: the DSM loss of the exact score (mean over dims), integrated in log t."""
    lam = data.lam[0].numpy()
    d = len(lam)

    def integrand(u):
        t = torch.tensor([math.exp(u)], dtype=F64)
        alpha, sigma = (v.item() for v in sde.marginal_coeffs(t))
        w = sigma**2 if weighting == "simple" else sde.coefficients(t)[1].item() ** 2
        return math.exp(u) * w * (d / sigma**2 - (1 / (alpha**2 * lam + sigma**2)).sum()) / d

    value, _ = integrate.quad(integrand, math.log(eps), math.log(sde.T), limit=200, epsabs=1e-10)
    return value / (sde.T - eps)


@pytest.mark.parametrize("name", list(SDES))
@pytest.mark.parametrize("weighting, importance", [("simple", False), ("likelihood", True)])
def test_exact_score_reaches_analytic_floor(name, weighting, importance):
    """For Gaussian data the exact score's DSM loss equals its closed-form floor (within 5 standard errors)."""
    sde, data, eps = SDES[name](), gaussian(dim=8), 1e-3
    loss = DSMLoss(sde, weighting, eps=eps, importance_sampling=importance)
    g = torch.Generator().manual_seed(1)
    per_sample = loss.per_sample(data.score_fn(sde), data.sample(100_000, g), generator=g)
    se = per_sample.std().item() / math.sqrt(per_sample.numel())
    floor = _analytic_floor(sde, data, weighting, eps)
    assert abs(per_sample.mean().item() - floor) < 5 * se, (per_sample.mean().item(), floor, se)


@pytest.mark.parametrize("name", list(SDES))
def test_exact_score_has_zero_expected_gradient(name):
    """∂L/∂c at c = 0 for s = (1 + c₂) s* + c₁ u vanishes at the exact score and not at a wrong one."""
    sde, data = SDES[name](), gaussian(dim=8)
    loss, g = DSMLoss(sde, "simple", eps=1e-3), torch.Generator().manual_seed(2)
    u = torch.randn(8, generator=g, dtype=F64)

    def gradient_stats(scale):
        grads = []
        for _ in range(20):
            c = torch.zeros(2, dtype=F64, requires_grad=True)
            score = lambda x, t: (scale + c[1]) * data.score(sde, x, t) + c[0] * u
            grads.append(torch.autograd.grad(loss(score, data.sample(5000, g), generator=g), c)[0])
        grads = torch.stack(grads)
        return grads.mean(0), grads.std(0) / math.sqrt(len(grads))

    mean, se = gradient_stats(1.0)
    assert (mean.abs() < 5 * se).all(), (mean, se)
    mean, se = gradient_stats(1.1)  # a 10% too large score: the gradient pushes c₂ down, clearly
    assert mean[1] > 5 * se[1], (mean, se)


def test_importance_sampler_density_integrates_to_one_and_matches_histogram():
    sampler = DSMLoss(scoresde.VPSDE(), "likelihood", eps=1e-5, importance_sampling=True).sampler
    t, q = sampler.sample(200_000, torch.Generator().manual_seed(0), dtype=F64)
    assert t.min() >= 1e-5 and t.max() <= 1.0
    # P(t < 0.01) from the samples matches the integral of the sampling density.
    frac = (t < 0.01).double().mean().item()
    j = torch.searchsorted(sampler.grid, torch.tensor([0.01], dtype=F64)).item()
    expected = sampler.cdf[j - 1] + (0.01 - sampler.grid[j - 1]) / (sampler.grid[j] - sampler.grid[j - 1]) * (sampler.cdf[j] - sampler.cdf[j - 1])
    assert frac == pytest.approx(expected.item(), abs=5 * math.sqrt(frac * (1 - frac) / 200_000))


def test_user_weighting_callable():
    sde = scoresde.VPSDE()
    x0, z, t = torch.randn(10, 2, dtype=F64), torch.randn(10, 2, dtype=F64), torch.full((10,), 0.5, dtype=F64)
    score = lambda x, t: torch.zeros_like(x)
    two = DSMLoss(sde, weighting=lambda t: 2 * torch.ones_like(t))(score, x0, t=t, noise=z)
    one = DSMLoss(sde, weighting=lambda t: torch.ones_like(t))(score, x0, t=t, noise=z)
    assert two.item() == pytest.approx(2 * one.item())
    summed = DSMLoss(sde, weighting=lambda t: torch.ones_like(t), reduce="sum")(score, x0, t=t, noise=z)
    assert summed.item() == pytest.approx(2 * one.item())  # 2 dims


@pytest.mark.parametrize("kwargs, match", [
    (dict(weighting="uniform"), r"weighting must be one of \['likelihood', 'simple', 'v'\], got 'uniform'"),
    (dict(reduce="max"), r"reduce must be one of \['mean', 'sum'\], got 'max'"),
    (dict(eps=0.0), r"eps must lie in \(0, T\)"),
    (dict(weighting="simple", importance_sampling=True), "importance_sampling=True needs weighting='likelihood'"),
])
def test_bad_loss_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DSMLoss(scoresde.VPSDE(), **kwargs)
