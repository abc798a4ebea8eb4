"""Exact answers for the core pieces that the sampler tests do not pin down: the ODE solver, score wrappers,
losses on replayed draws, the likelihood's divergence and latent, and the SDEs' closed forms."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

import scoresde
from scoresde.likelihood import _drift_and_divergence, dequantize, likelihood
from scoresde.losses import DDPMLoss, DSMLoss
from scoresde.parameterization import get_score_fn
from scoresde.sampling.ode_solvers import dopri5, scipy_rk45
from problems import SDES, gaussian, gaussian_flow

F64 = torch.float64


# -- the SDEs' closed forms --------------------------------------------------------------------------------------------
def _reference_marginals(name, t):
    """α_t, σ_t, g(t)² in closed form (Song et al. 2021, Eqs. 29–34) for the linear VP, sub-VP and VE SDEs."""
    if name == "ve":
        sig = 0.01 * 5000.0**t
        return torch.ones_like(t), (sig**2 - 0.01**2).clamp(min=0).sqrt(), sig**2 * 2 * math.log(5000.0)
    integral, beta = 0.1 * t + 0.5 * t**2 * 19.9, 0.1 + 19.9 * t
    alpha = torch.exp(-0.5 * integral)
    if name == "subvp":
        return alpha, 1 - alpha**2, beta * (1 - torch.exp(-2 * integral))
    return alpha, (1 - alpha**2).sqrt(), beta


def _reference_drift(name, t):
    return torch.zeros_like(t) if name == "ve" else -0.5 * (0.1 + 19.9 * t)


@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
def test_sde_interface_in_closed_form(name):
    """sde, marginal_prob, discretize over dt (exact transition; t − dt clamped at 0), prior_sampling, prior_logp and
    the reverse SDE / probability-flow ODE with its discretisation, on image-shaped x, to 1e-12."""
    sde, close = SDES[name](), lambda a, b: torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    x = torch.randn(4, 2, 1, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    t, dt = torch.tensor([0.03, 0.2, 0.55, 1.0], dtype=F64), 0.05
    col = lambda v: v[:, None, None, None]
    alpha, sigma, g2 = _reference_marginals(name, t)
    f = _reference_drift(name, t)
    drift, g = sde.sde(x, t)
    assert close(drift, col(f) * x) and close(g**2, g2)
    mean, std = sde.marginal_prob(x, t)
    assert close(mean, col(alpha) * x) and close(std, sigma)
    alpha_s, sigma_s, _ = _reference_marginals(name, (t - dt).clamp(min=0))
    a = alpha / alpha_s
    v = sigma**2 - a**2 * sigma_s**2
    fd, G = sde.discretize(x, t, dt)
    assert close(fd, col(a - 1) * x) and close(G, v.sqrt())
    z = sde.prior_sampling((4, 2, 1, 2), generator=torch.Generator().manual_seed(1), dtype=F64)
    prior_std = math.sqrt(50.0**2 - 0.01**2) if name == "ve" else 1.0
    assert close(z, prior_std * torch.randn(4, 2, 1, 2, generator=torch.Generator().manual_seed(1), dtype=F64))
    assert close(sde.prior_logp(z), -2 * math.log(2 * math.pi * prior_std**2) - z.pow(2).flatten(1).sum(1) / (2 * prior_std**2))
    score = lambda x, t: torch.sin(x) * col(t)
    for c, flow in ((1.0, False), (0.5, True)):
        rev = sde.reverse(score, probability_flow=flow)
        drift, diffusion = rev.sde(x, t)
        assert close(drift, col(f) * x - c * col(g2) * score(x, t)) and close(diffusion, g2.sqrt() * (not flow))
        fr, Gr = rev.discretize(x, t, dt)
        assert close(fr, col(a - 1) * x - c * col(v) * score(x, t)) and close(Gr, v.sqrt() * (not flow))


# -- the torch Dormand–Prince solver is scipy's RK45 ------------------------------------------------------------------
@pytest.mark.parametrize("t0, t1", [(0.0, 2.0), (2.0, 0.3), (0.1, 1.0)])
@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-9])
def test_dopri5_takes_scipy_rk45_steps(t0, t1, tol):
    """y' = −2t (y − 1), y = 1 + (y₀ − 1) e^{−(t² − t₀²)}: the same tableau, error norm and step control as
    scipy.integrate.solve_ivp(method='RK45') give the same NFE and the same y(t1) to 1e-12, both ways in time."""
    nfe = [0]

    def func(t, y):
        nfe[0] += 1
        return -2 * t * (y - 1)

    y0 = torch.tensor([[3.0, -0.5]], dtype=F64)
    ours = dopri5(func, y0, t0, t1, rtol=tol, atol=tol, max_nfe=6000)  # scipy needs at most 70 steps here
    ref = integrate.solve_ivp(lambda t, y: -2 * t * (y - 1), (t0, t1), y0.numpy().ravel(), method="RK45", rtol=tol, atol=tol)
    assert nfe[0] == ref.nfev
    np.testing.assert_allclose(ours.numpy().ravel(), ref.y[:, -1], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(scipy_rk45(func, y0, t0, t1, rtol=tol, atol=tol).numpy().ravel(), ref.y[:, -1])
    exact = 1 + (y0.numpy().ravel() - 1) * math.exp(-(t1**2 - t0**2))
    assert np.abs(ref.y[:, -1] - exact).max() < 1e4 * tol  # and it solves the ODE


def test_dopri5_from_rest_takes_scipy_rk45_steps():
    """y' = 4 max(t − ½, 0)² (1 − y) is at rest at t = 0, so the first trial step comes from the zero-derivative branch
    of Hairer's rule (h = 1e-6); then the same NFE and y(2) as scipy's RK45."""
    nfe, rhs = [0], lambda t, y: 4 * max(t - 0.5, 0.0) ** 2 * (1 - y)

    def func(t, y):
        nfe[0] += 1
        return rhs(t, y)

    ours = dopri5(func, torch.tensor([[3.0]], dtype=F64), 0.0, 2.0, rtol=1e-6, atol=1e-6, max_nfe=6000)
    ref = integrate.solve_ivp(rhs, (0.0, 2.0), [3.0], method="RK45", rtol=1e-6, atol=1e-6)
    assert nfe[0] == ref.nfev and ours.item() == pytest.approx(ref.y[0, -1], rel=1e-12)


def test_dopri5_zero_length_and_max_nfe():
    assert torch.equal(dopri5(lambda t, y: -y, torch.ones(1, 2, dtype=F64), 0.5, 0.5), torch.ones(1, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"max_nfe=20.*rtol"):
        dopri5(lambda t, y: -50 * y, torch.ones(1, 2, dtype=F64), 0.0, 1.0, rtol=1e-10, atol=1e-10, max_nfe=20)


# -- score wrappers ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("parameterization", ["x0", "v"])
def test_discrete_score_fn_converts_with_ddpm_alphas(parameterization):
    """continuous=False: x₀ and v outputs are converted with √ᾱ_i, √(1 − ᾱ_i) of DDPM's step i (Ho et al. 2020)."""
    sde = scoresde.VPSDE()
    out = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-0.7, 0.1]], dtype=F64)
    x = torch.tensor([[1.0, -2.0], [0.5, 0.25], [3.0, -1.0]], dtype=F64)
    score = get_score_fn(lambda x, i: out, sde, parameterization, continuous=False)(x, torch.tensor([1e-3, 0.5, 1.0], dtype=F64))
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=F64), 0)[[0, 499, 999]][:, None]
    a, s = abar.sqrt(), (1 - abar).sqrt()
    eps = (x - a * out) / s if parameterization == "x0" else a * out + s * x  # v = α ε − σ x₀, α² + σ² = 1
    assert torch.allclose(score, -eps / s, rtol=1e-13, atol=0)


# -- losses on replayed draws -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
@pytest.mark.parametrize("weighting", ["simple", "likelihood"])
def test_dsm_loss_on_replayed_draws(name, weighting):
    """With a seeded generator the loss draws u ~ U(0, 1) for t = eps + (T − eps) u, then z: replaying both gives
    λ(t) mean_d (s(x_t, t) + z/σ_t)², λ = σ_t² or g(t)², to 1e-12, for an arbitrary score."""
    sde, eps = SDES[name](), 0.02
    x0 = torch.randn(6, 2, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    score = lambda x, t: torch.sin(3 * x) - t[:, None, None] * x
    for reduce in ("mean", "sum"):
        loss = DSMLoss(sde, weighting, eps=eps, reduce=reduce).per_sample(score, x0, generator=torch.Generator().manual_seed(7))
        g = torch.Generator().manual_seed(7)
        t = eps + (1 - eps) * torch.rand(6, generator=g, dtype=F64)
        z = torch.randn(6, 2, 2, generator=g, dtype=F64)
        alpha, sigma, g2 = _reference_marginals(name, t)
        x_t = alpha[:, None, None] * x0 + sigma[:, None, None] * z
        sq = ((score(x_t, t) + z / sigma[:, None, None]) ** 2).flatten(1)
        expected = (sigma**2 if weighting == "simple" else g2) * (sq.mean(1) if reduce == "mean" else sq.sum(1))
        assert torch.allclose(loss, expected, rtol=1e-12, atol=0)


def test_importance_sampler_inverts_its_cdf_and_weights_by_its_density():
    """t comes from the piecewise-linear inverse of the CDF of q ∝ g²/σ² (trapezoid on the log grid): CDF(t) = u,
    q(t) is that CDF's slope, the CDF matches ∫ g²/σ² by quadrature to 1e-4, and the loss weight is g²/(q (T − eps))."""
    sde, eps = scoresde.VPSDE(), 1e-4
    loss = DSMLoss(sde, "likelihood", eps=eps, importance_sampling=True)
    sampler = loss.sampler
    grid, cdf = sampler.grid.numpy(), sampler.cdf.numpy()
    assert grid[0] == pytest.approx(eps, rel=1e-12) and grid[-1] == pytest.approx(1.0, rel=1e-12) and cdf[0] == 0 and cdf[-1] == 1
    density = lambda s: (lambda a, sig, g2: g2 / sig**2)(*_reference_marginals("vp", torch.tensor(s, dtype=F64)))
    total = integrate.quad(lambda s: density(s).item(), eps, 1.0, points=[1e-3, 1e-2, 1e-1], limit=200)[0]
    for point in (1e-3, 1e-2, 0.3):
        part = integrate.quad(lambda s: density(s).item(), eps, point, limit=200)[0]
        assert np.interp(point, grid, cdf) == pytest.approx(part / total, rel=1e-4)
    t, q = sampler.sample(1000, torch.Generator().manual_seed(3), dtype=F64)
    u = torch.rand(1000, generator=torch.Generator().manual_seed(3), dtype=F64).numpy()
    np.testing.assert_allclose(np.interp(t.numpy(), grid, cdf), u, rtol=0, atol=1e-12)
    j = np.searchsorted(grid, t.numpy()) - 1
    np.testing.assert_allclose(q.numpy(), (cdf[j + 1] - cdf[j]) / (grid[j + 1] - grid[j]), rtol=1e-9)
    t2, weight = loss.sample_t(1000, torch.Generator().manual_seed(3), "cpu", F64)
    assert torch.equal(t2, t)
    assert torch.allclose(weight, _reference_marginals("vp", t)[2] / (q * (1 - eps)), rtol=1e-12)


@pytest.mark.parametrize("parameterization", ["eps", "x0", "v"])
def test_ddpm_loss_random_steps_and_parameterizations(parameterization):
    """index ~ U{0 … N−1}, then z, from the generator; the model's x₀ or v is converted to ε̂ with DDPM's ᾱ_i."""
    sde = scoresde.VPSDE()
    x0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    model = lambda x, i: torch.cos(x) + i[:, None].to(x.dtype) / 1000
    for reduce in ("mean", "sum"):
        loss = DDPMLoss(sde, parameterization, reduce=reduce).per_sample(model, x0, generator=torch.Generator().manual_seed(4))
        g = torch.Generator().manual_seed(4)
        i = torch.randint(0, 1000, (5,), generator=g)
        z = torch.randn(5, 3, generator=g, dtype=F64)
        abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=F64), 0)[i][:, None]
        a, s = abar.sqrt(), (1 - abar).sqrt()
        x_t = a * x0 + s * z
        out = model(x_t, i)
        eps = {"eps": out, "x0": (x_t - a * out) / s, "v": a * out + s * x_t}[parameterization]
        sq = (z - eps) ** 2
        assert torch.allclose(loss, sq.mean(1) if reduce == "mean" else sq.sum(1), rtol=1e-12, atol=0)


# -- likelihood -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SDES))
def test_divergence_of_the_affine_drift(name):
    """For Gaussian data ∂h/∂x = f I + ½ g² C_t⁻¹ is constant: exact trace = tr, Hutchinson = εᵀ(∂h/∂x)ε, to 1e-12."""
    sde, data = SDES[name](), gaussian(dim=4, seed=3)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    t = torch.full((3,), 0.37, dtype=F64)
    f, g = sde.coefficients(t[:1])
    alpha, sigma = sde.marginal_coeffs(t[:1])
    J = f * torch.eye(4, dtype=F64) + 0.5 * g**2 * torch.linalg.inv(alpha**2 * data.covs[0] + sigma**2 * torch.eye(4, dtype=F64))
    probe = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    h, div = _drift_and_divergence(data.score_fn(sde), sde, x, t, "exact", probe)
    assert torch.allclose(h, f * x - 0.5 * g**2 * data.score(sde, x, t), rtol=1e-12, atol=1e-12)
    assert torch.allclose(div, torch.trace(J).expand(3), rtol=1e-12)
    _, div = _drift_and_divergence(data.score_fn(sde), sde, x, t, "hutchinson", probe)
    assert torch.allclose(div, torch.einsum("bi,ij,bj->b", probe, J, probe), rtol=1e-12)


def test_dequantize_replays_its_uniform_noise():
    u = torch.tensor([[0, 17, 255]], dtype=torch.uint8)
    y = dequantize(u, torch.Generator().manual_seed(5), data_range=(-1.0, 3.0))
    r = torch.rand(u.shape, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(y, -1.0 + 4.0 * (u.float() + r) / 256.0, rtol=1e-6, atol=1e-7)


# -- boundaries of the schedules' and losses' ranges -----------------------------------------------------------------
def test_range_boundaries():
    """β_min = 0 is allowed (β(0) = 0, ∫β = t²/2 · β_max); s = 0, max_beta ∈ {0, 1}, a loss eps = T, a likelihood
    eps ∈ {0, T} and σ_max = σ_min are not."""
    schedule = scoresde.LinearSchedule(beta_min=0.0, beta_max=2.0)
    assert schedule.beta(torch.zeros(1, dtype=F64)).item() == 0.0 and schedule.integral(torch.ones(1, dtype=F64)).item() == 1.0
    for kwargs, match in ((dict(s=0.0), "s "), (dict(max_beta=0.0), "max_beta"), (dict(max_beta=1.0), "max_beta")):
        with pytest.raises(ValueError, match=match):  # not math.log1p's own "math domain error"
            scoresde.CosineSchedule(**kwargs)
    with pytest.raises(ValueError):
        DSMLoss(scoresde.VPSDE(), eps=1.0)
    for eps in (0.0, 1.0):
        with pytest.raises(ValueError):
            likelihood(lambda x, t: -x, scoresde.VPSDE(), torch.zeros(2, 2), eps=eps)
    with pytest.raises(ValueError, match="sigma_max"):
        scoresde.VESDE(sigma_min=1.0, sigma_max=1.0)


def test_timestep_below_the_first_ddpm_step_is_index_0():
    """t < 1.5 T/N rounds to DDPM step 1 (index 0), never to index −1, which would wrap to the last step."""
    sde = scoresde.VPSDE()
    assert sde.timestep(torch.tensor([1e-5, 4e-4, 1.4e-3, 1.6e-3, 1.0], dtype=F64)).tolist() == [0, 0, 0, 1, 999]


# -- the torchsde sampler's SDE in s = T − t ---------------------------------------------------------------------------
class _NoiselessDrift(scoresde.SDE):
    """dx = −t x dt without noise: its reverse-time SDE in s = T − t is dy/ds = (T − s) y."""

    def coefficients(self, t):
        return -t, torch.zeros_like(t)

    def marginal_coeffs(self, t):
        return torch.exp(-0.5 * t**2), torch.zeros_like(t)


def test_torchsde_euler_steps_in_reversed_time():
    """torchsde's Euler on dy/ds = (T − s) y with ds = (T − eps)/(K − 1): y_K = x_T Π_n (1 + (T − n ds) ds), to 1e-12."""
    sde, steps = _NoiselessDrift(), 7
    sampler = scoresde.sampling.get_sampler("torchsde:euler", steps=steps, denoise=False, progress=False)
    x, nfe = sampler(lambda x, t: torch.zeros_like(x), sde, (3, 2), generator=torch.Generator().manual_seed(4), dtype=F64)
    ds = (1.0 - sde.sampling_eps) / (steps - 1)
    factor = math.prod(1 + (1.0 - n * ds) * ds for n in range(steps - 1))
    x_T = torch.randn(3, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    assert torch.allclose(x, x_T * factor, rtol=1e-12, atol=0) and nfe >= steps - 1


@pytest.mark.parametrize("name", ["vp", "ve"])
def test_torchsde_drift_and_diffusion(name):
    """f(s, y) = −[f(t) x − g(t)² s(x, t)] and g(s, y) = g(t), t = T − s, on flattened states, for float and tensor s."""
    from scoresde.sampling.torchsde_sampler import _ReverseSDE

    sde, data = SDES[name](), gaussian(dim=4, seed=2)
    rsde = _ReverseSDE(data.score_fn(sde), sde, (3, 2, 2), 1.0, "ito")
    y = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    t = torch.full((3,), 0.7, dtype=F64)
    f, g = sde.coefficients(t)
    drift = -(f[:, None] * y - g[:, None] ** 2 * data.score(sde, y, t))
    for s in (0.3, torch.tensor(0.3, dtype=F64)):
        assert torch.allclose(rsde.f(s, y), drift, rtol=1e-12, atol=1e-12)
        assert torch.allclose(rsde.g(s, y), g[:, None].expand(3, 4), rtol=1e-12)



def test_torchsde_brownian_motions():
    """"interval" is a BrownianInterval on [0, t1] with the asked Lévy area, "tree" a BrownianTree from w0 = 0;
    the entropy seeds both, and the increments have the state's shape and variance t1 − t0 in distribution."""
    import torchsde

    from scoresde.sampling.torchsde_sampler import _brownian

    seeded = lambda: torch.Generator().manual_seed(5)  # the sampler's generator draws the Brownian entropy
    entropy = int(torch.randint(0, 2**31 - 1, (1,), generator=seeded()).item())
    interval = _brownian("interval", 0.9, (2, 3), "cpu", F64, seeded(), "space-time")
    tree = _brownian("tree", 0.9, (2, 3), "cpu", F64, seeded(), "none")
    assert isinstance(interval, torchsde.BrownianInterval) and isinstance(tree, torchsde.BrownianTree)
    assert interval.levy_area_approximation == "space-time" and interval.entropy == entropy
    assert (interval._start, interval._end) == (0.0, 0.9) and interval.dtype == F64
    for bm, kind, levy in ((interval, "interval", "space-time"), (tree, "tree", "none")):
        again = _brownian(kind, 0.9, (2, 3), "cpu", F64, seeded(), levy)
        assert bm(0.0, 0.9).shape == (2, 3) and torch.equal(bm(0.2, 0.7), again(0.2, 0.7))
    assert torch.equal(tree(0.0, 0.0), torch.zeros(2, 3, dtype=F64))  # w0 = 0 at t0 = 0


@pytest.mark.parametrize("method, rtol", [("srk", 1e-4), ("reversible_heun", 1e-3), ("midpoint", 1e-3)])
def test_torchsde_methods_on_a_noiseless_sde(method, rtol):
    """The higher-order torchsde methods integrate dy/ds = (T − s) y: 20 steps land near x_T e^{(T² − eps²)/2}
    (measured errors: srk 6e-6, reversible Heun 1e-4, midpoint 2e-4); Milstein's drift step is Euler's, exactly."""
    sde = _NoiselessDrift()
    run = lambda method: scoresde.sampling.get_sampler(f"torchsde:{method}", steps=21, denoise=False, progress=False)(
        lambda x, t: torch.zeros_like(x), sde, (3, 2), generator=torch.Generator().manual_seed(4), dtype=F64)[0]
    x_T = torch.randn(3, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    assert torch.allclose(run(method), x_T * math.exp((1 - sde.sampling_eps**2) / 2), rtol=rtol, atol=0)
    if method == "srk":
        assert torch.allclose(run("milstein"), run("euler"), rtol=1e-13, atol=0)


# -- the likelihood end to end (the slowest test here, so last) ---------------------------------------------------------
@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
def test_likelihood_latent_and_log_density_are_exact(name):
    """At rtol = atol = 1e-8: z is the exact flow of x from eps to T (to 1e-6 relative), and logp = log p_T(z) +
    ∫ tr(∂h/∂x) dt equals the closed-form log p_eps(x) to 1e-7 once the true p_T replaces the prior.
    bpd = −logp/(D log 2) + offset. Rademacher Hutchinson is exact here (∂h/∂x is diagonal for a diagonal Σ)."""
    sde, eps = SDES[name](), 1e-2
    data = scoresde.analytic.GaussianMixture([1.0], [[0.5, -1.0, 0.2]], torch.diag(torch.tensor([0.3, 1.2, 0.7], dtype=F64))[None])
    x = data.sample(3, torch.Generator().manual_seed(0))
    true_prior = lambda z: data.log_prob(sde, z, torch.ones(len(z), dtype=F64))
    r = likelihood(data.score_fn(sde), sde, x, eps=eps, trace="exact", rtol=1e-8, atol=1e-8, bpd_offset=1.5)
    assert torch.allclose(r.z, gaussian_flow(data, sde, x, eps, 1.0), rtol=1e-6, atol=1e-6)
    logp = r.logp - sde.prior_logp(r.z) + true_prior(r.z)
    assert torch.allclose(logp, data.log_prob(sde, x, torch.full((3,), eps, dtype=F64)), rtol=0, atol=1e-7)
    assert torch.allclose(r.bpd, -r.logp / (3 * math.log(2)) + 1.5, rtol=1e-14)
    if name == "vp":  # nfe counts the score calls; one sample works too
        calls = []
        score = lambda x, t: calls.append(1) or data.score_fn(sde)(x, t)
        h = likelihood(score, sde, x, eps=eps, rtol=1e-8, atol=1e-8, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(h.logp, r.logp, rtol=0, atol=1e-12) and h.nfe == r.nfe == len(calls)
        one = likelihood(data.score_fn(sde), sde, x[:1], eps=eps, trace="exact", rtol=1e-6, atol=1e-6)
        logp_one = one.logp - sde.prior_logp(one.z) + true_prior(one.z)
        assert logp_one.shape == (1,) and logp_one.item() == pytest.approx(logp[0].item(), abs=1e-5)
