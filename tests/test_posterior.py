"""Exact tests of the posterior solvers (scoresde.inverse: DPS, ΠGDM, DDRM, DDNM, SMC), their operators and the
closed-form posteriors they are measured against.

Gaussian priors with their exact (linear) score make ΠGDM, DDRM, DDNM and replacement affine in the noise they
draw, so `moments` (test_inverse.py) gives their output mean and covariance exactly, with no Monte Carlo. What is
asserted is what the theory promises:
- the operators' SVDs reproduce A, Aᵀ and A⁺, and blur equals a direct circular convolution;
- exact.posterior equals the information-form posterior and Bayes' rule for the weights;
- DDRM and DDNM with σ_y = 0 keep A x = y to round-off, for every operator;
- ΠGDM's guidance is ∇ log p(y | x_t) exactly for a N(0, I) prior, so it converges to the posterior there (first
  order in the step), with any σ_y;
- ΠGDM and DDRM sample closer to the posterior with their σ_y than to the noiseless one, and DDNM⁺ does not pin
  A x to a noisy y;
- the SMC sampler's error falls as the particles grow, at the Monte Carlo rate;
- DPS's step lowers the misfit, and with ζ = 0 it is the plain sampler.
"""
from __future__ import annotations

import math
from contextlib import nullcontext

import pytest
import torch

import scoresde
from scoresde import analytic, inverse
from scoresde.inverse.smc import systematic
from scoresde.resize import downsample
from scoresde.sampling import get_sampler

from test_inverse import Probe, gaussian_w2
from tolerance import ulps

F64 = torch.float64


def gen(device, seed=0):
    return torch.Generator(device).manual_seed(seed)


def random_gaussian(d, seed, isotropic=False):
    g = torch.Generator().manual_seed(seed)
    if isotropic:
        return analytic.GaussianMixture([1.0], torch.zeros(1, d, dtype=F64), torch.eye(d, dtype=F64)[None])
    L = torch.randn(d, d, generator=g, dtype=F64) * 0.5
    return analytic.GaussianMixture([1.0], torch.randn(1, d, generator=g, dtype=F64),
                                    (L @ L.T + 0.2 * torch.eye(d, dtype=F64))[None])


def exact_moments(run, y, device):
    """Mean [d] and covariance [d, d] of run(y_batch, generator) for an affine solver (Probe noise)."""
    count = Probe(1, device)
    run(y[None].to(device), count)
    batch = 1 + count.drawn
    x = run(y[None].expand(batch, *y.shape).to(device), Probe(batch, device))[0].flatten(1).cpu()
    J = x[1:] - x[0]
    return x[0], J.T @ J


def solver_run(prior, sde, op, method, sigma_y, steps, **options):
    score = prior.score_fn(sde)
    return lambda y, g: inverse.solve(score, sde, y, op, method=method, sigma_y=sigma_y, generator=g,
                                      sampler=get_sampler("ancestral", steps=steps, progress=False), **options)


# ---------------------------------------------------------------- operators

MASK = torch.zeros(1, 8, 8)
MASK[..., :4, :] = 1


def operators():
    g = torch.Generator().manual_seed(0)
    return [(inverse.Inpaint(MASK), (3, 8, 8)), (inverse.Downsample(2), (3, 8, 8)),
            (inverse.Blur(torch.full((2, 3), 1 / 6, dtype=F64), rcond=0), (2, 8, 8)), (inverse.Colorize(), (3, 4, 4)),
            (inverse.Dense(torch.randn(5, 12, generator=g, dtype=F64)), (3, 2, 2))]


@pytest.mark.parametrize("k", range(5))
def test_operator_svd_reproduces_a_its_adjoint_and_pseudo_inverse(device, k):
    op, shape = operators()[k]
    op.bind(shape)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, *shape, generator=g, dtype=F64).to(device)
    y = torch.randn(3, *op.out_shape, generator=g, dtype=F64).to(device)
    s, c, u = op.singulars(x), op.Vt(x), op.Ut(y)
    tol = ulps(20 * math.prod(shape), 10.0)
    # ⟨A x, y⟩ = Σ s_i (Vᵀx)_i conj(Uᵀy)_i = ⟨x, Aᵀ y⟩
    inner = (op.A(x) * y).flatten(1).sum(1)
    assert (inner - (s * c[:, :len(s)] * u[:, :len(s)].conj()).sum(1).real).abs().max() < tol
    assert (inner - (x * op.At(y)).flatten(1).sum(1)).abs().max() < tol
    assert (op.V(c) - x).abs().max() < tol and (op.U(u) - y).abs().max() < tol  # V and U invertible ...
    assert (c.abs().pow(2).sum(1) - x.pow(2).flatten(1).sum(1)).abs().max() < tol * 10  # ... and norm-preserving
    assert (u.abs().pow(2).sum(1) - y.pow(2).flatten(1).sum(1)).abs().max() < tol * 10
    assert c.shape[1] == math.prod(shape) and u.shape[1] == math.prod(op.out_shape)
    Ax = op.A(x)
    assert (op.A(op.pinv(Ax)) - Ax).abs().max() < tol  # A A⁺ A = A
    P = op.project(x)
    assert (op.project(P) - P).abs().max() < tol and (op.A(x - P)).abs().max() < tol  # A⁺A a projection
    M = op.matrix(shape).to(device)
    assert (op.A(x).flatten(1) - x.flatten(1) @ M.T).abs().max() < tol
    assert op.data_shape(op.out_shape) in (tuple(shape), None) or isinstance(op, inverse.Dense)


def test_operators_equal_independent_implementations(device):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=F64).to(device)
    kernel = torch.rand(3, 5, generator=g, dtype=F64)
    blurred = inverse.Blur(kernel, rcond=0).bind((3, 8, 8)).A(x)
    direct = sum(kernel[i, j] * torch.roll(x, (i - 1, j - 2), dims=(2, 3)) for i in range(3) for j in range(5))
    assert (blurred - direct).abs().max() < ulps(30, x)  # circular convolution centred at the kernel's middle
    assert torch.allclose(inverse.Downsample(4).bind((3, 8, 8)).A(x), downsample(x, 4), rtol=0, atol=ulps(16, x))
    grey = inverse.Colorize().bind((3, 8, 8)).A(x)
    assert (grey - x.mean(1, keepdim=True)).abs().max() < ulps(4, x)
    assert torch.equal(inverse.Inpaint(MASK).bind((3, 8, 8)).A(x), x * MASK.to(device, F64))


def test_operators_refuse_data_they_do_not_fit():
    for op, shape, says in [(inverse.Inpaint(MASK), (3, 4, 4), "mask of shape"),
                            (inverse.Downsample(3), (3, 8, 8), "multiples of factor=3"),
                            (inverse.Colorize(), (1, 8, 8), "RGB"),
                            (inverse.Blur(torch.ones(9, 9, dtype=F64) / 81), (1, 4, 4), "kernel"),
                            (inverse.Dense(torch.ones(2, 5, dtype=F64)), (2, 2), "5 values")]:
        with pytest.raises(ValueError, match=says):
            op.bind(shape)


# ---------------------------------------------------------------- exact posteriors

@pytest.mark.parametrize("sigma_y", [0.2, 1.0])
def test_exact_posterior_equals_the_information_form_and_bayes_weights(sigma_y):
    g = torch.Generator().manual_seed(4)
    d, K = 4, 3
    Ls = torch.randn(K, d, d, generator=g, dtype=F64) * 0.5
    prior = analytic.GaussianMixture(torch.tensor([0.2, 0.5, 0.3], dtype=F64), torch.randn(K, d, generator=g,
                                     dtype=F64) * 2, Ls @ Ls.transpose(1, 2) + 0.1 * torch.eye(d, dtype=F64))
    A, y = torch.randn(2, d, generator=g, dtype=F64), torch.randn(2, generator=g, dtype=F64)
    post = inverse.posterior(prior, A, y, sigma_y)
    for k in range(K):
        P = torch.linalg.inv(prior.covs[k]) + A.T @ A / sigma_y**2  # information form (Bishop 2006, Eq. 2.116)
        cov = torch.linalg.inv(P)
        mean = cov @ (A.T @ y / sigma_y**2 + torch.linalg.solve(prior.covs[k], prior.means[k]))
        torch.testing.assert_close(post.covs[k], cov, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(post.means[k], mean, rtol=1e-10, atol=1e-12)
    logw = torch.stack([torch.distributions.MultivariateNormal(A @ prior.means[k], A @ prior.covs[k] @ A.T
                        + sigma_y**2 * torch.eye(2, dtype=F64)).log_prob(y) for k in range(K)]) + prior.weights.log()
    torch.testing.assert_close(post.weights, torch.softmax(logw, 0), rtol=1e-10, atol=1e-14)


def test_exact_noiseless_posterior_is_the_gaussian_conditional_and_drops_unobserved_rows():
    prior = random_gaussian(3, 5)
    mask = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    y = torch.tensor([1.5, 0.0, 0.0], dtype=F64)
    post = inverse.posterior(prior, inverse.Inpaint(mask), y, 0.0, shape=(3,))
    S, m = prior.covs[0], prior.means[0]
    gain = S[:, :1] / S[0, 0]
    torch.testing.assert_close(post.mean(), m + gain[:, 0] * (1.5 - m[0]), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(post.cov(), S - gain @ S[:1], rtol=1e-12, atol=1e-14)
    assert post.sample(5)[:, 0].sub(1.5).abs().max() < 1e-12


# ---------------------------------------------------------------- projection methods over operators

def test_projection_methods_over_operators_equal_the_existing_functions(device):
    """replacement/repaint on Inpaint = inpaint(), on Colorize = colorize(), ilvr on Downsample = ilvr()."""
    sde = scoresde.VPSDE()
    g = torch.Generator().manual_seed(6)
    prior = random_gaussian(48, 6)
    score = prior.score_fn(sde)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=F64).to(device)
    sampler = get_sampler("ancestral", steps=12, progress=False)
    mask = (torch.rand(1, 4, 4, generator=g) < 0.5).to(device, F64)
    tol = ulps(400, 10.0)
    old = inverse.inpaint(score, sde, x, mask, sampler, resample=2, generator=gen(device))[0]
    new = inverse.solve(score, sde, x * mask, inverse.Inpaint(mask), method="repaint", sampler=sampler,
                        resample=2, generator=gen(device))[0]
    assert (old - new).abs().max() < tol
    old = inverse.colorize(score, sde, x, sampler, generator=gen(device))[0]
    new = inverse.solve(score, sde, x.mean(1, keepdim=True), inverse.Colorize(), method="replacement",
                        sampler=sampler, generator=gen(device))[0]
    assert (old - new).abs().max() < tol
    old = inverse.ilvr(score, sde, x, 2, sampler, generator=gen(device))[0]
    new = inverse.solve(score, sde, downsample(x, 2), inverse.Downsample(2), method="ilvr", sampler=sampler,
                        generator=gen(device))[0]
    assert (old - new).abs().max() < tol


# ---------------------------------------------------------------- DDRM, DDNM: exact consistency

@pytest.mark.parametrize("method", ["ddrm", "ddnm", "smc"])
@pytest.mark.parametrize("k", range(5))
def test_noiseless_ddrm_ddnm_and_smc_keep_ax_equal_y(device, method, k):
    op, shape = operators()[k]
    sde = scoresde.VPSDE()
    prior = random_gaussian(math.prod(shape), 7)
    x_true = prior.sample(2, generator=torch.Generator().manual_seed(8)).reshape(2, *shape).to(device)
    y = op.bind(shape).A(x_true)
    options = {"particles": 3} if method == "smc" else {}
    x, nfe = inverse.solve(prior.score_fn(sde), sde, y, op, method=method, shape=shape, generator=gen(device),
                           sampler=get_sampler("ancestral", steps=6, progress=False), **options)
    assert x.shape == x_true.shape and nfe == 6
    s = op.singulars(y)
    # ȳ = Σ⁺Uᵀy then A V ȳ: a few hundred roundings of the data's scale, amplified by 1/s_min (blur's small s)
    tol = ulps(50 * math.prod(shape), y) * (s.max() / s[s > 0].min()).item()
    assert (op.A(x) - y).abs().max() < tol
    assert (x - x_true).abs().max() > 1e-3  # the unobserved part is sampled, not copied


@pytest.mark.parametrize("eta", [0.0, 0.85, 1.0])
def test_ddrm_with_an_oracle_denoiser_keeps_the_forward_marginals(device, eta):
    """Kawar et al.'s Eq. 7 family keeps q(x_t | x_0) = N(α_t x_0, σ_t² I) at every step: with a denoiser that
    returns the true x_0 and σ_y = 0, the exact covariance of every state along DDRM's path is σ_t² I, and its
    mean α_t x_0 up to the prior draw's centring (|x̄_0| σ̄_t/σ̄_T)."""
    sde, d = scoresde.VPSDE(), 4
    g = torch.Generator().manual_seed(21)
    x0 = torch.randn(d, generator=g, dtype=F64)
    A = torch.randn(2, d, generator=g, dtype=F64)

    def oracle(x, t):
        alpha, sigma = (v[:, None].to(x.device, x.dtype) for v in sde.marginal_coeffs(t.to(F64).cpu()))
        return (alpha * x0.to(x.device) - x) / sigma**2

    times = []
    sampler = get_sampler("ancestral", steps=12, progress=False, return_trajectory=True,
                          callback=lambda x, t, k: times.append(float(t)))
    run = lambda y, gen_: inverse.solve(oracle, sde, y, inverse.Dense(A), method="ddrm", eta=eta,  # noqa: E731
                                        sampler=sampler, generator=gen_)
    count = Probe(1, device)
    run((A @ x0)[None].to(device), count)
    batch = 1 + count.drawn
    times.clear()
    _, _, traj = run((A @ x0)[None].expand(batch, 2).to(device), Probe(batch, device))
    alpha, sigma = sde.marginal_coeffs(torch.tensor(times[:-1], dtype=F64))
    sbar_T = (sigma[0] / alpha[0]).item()
    for state, a, s in zip(traj[1:-1], alpha, sigma):
        J = (state[1:] - state[0]).cpu()
        torch.testing.assert_close(J.T @ J, s**2 * torch.eye(d, dtype=F64), rtol=0, atol=ulps(400, 1.0))
        assert (state[0].cpu() - a * x0).norm() <= 2 * x0.norm() * a * (s / a) / sbar_T + ulps(400, 1.0)


# ---------------------------------------------------------------- ΠGDM: exact guidance and convergence

@pytest.mark.parametrize("sde_name", ["vp", "ve"])
@pytest.mark.parametrize("sigma_y", [0.0, 0.3])
def test_pigdm_guidance_is_the_exact_likelihood_score_for_a_standard_normal_prior(device, sde_name, sigma_y):
    """p(x_0) = N(0, I): x_0 | x_t ~ N(α x_t/(α² + σ²), r² I) with r² = σ²/(α² + σ²), so
    ∇ log p(y | x_t) = (α/(α² + σ²)) Aᵀ (r² AAᵀ + σ_y² I)⁻¹ (y − A E[x_0 | x_t]) exactly."""
    sde = {"vp": scoresde.VPSDE, "ve": scoresde.VESDE}[sde_name]()
    d = 5
    prior = random_gaussian(d, 0, isotropic=True)
    g = torch.Generator().manual_seed(9)
    A = torch.randn(3, d, generator=g, dtype=F64)
    y = torch.randn(4, 3, generator=g, dtype=F64).to(device)
    solver = inverse.PiGDM(get_sampler("ancestral", steps=10, progress=False), inverse.Dense(A), y, sigma_y)
    ts = solver.time_grid(sde)
    x = torch.randn(4, d, generator=g, dtype=F64).to(device)
    score = scoresde.score.CountedScore(scoresde.score.as_score(prior.score_fn(sde)))
    c = solver.tables(score, sde, ts, x)
    A = A.to(device)
    for k in (1, 5, 9):
        alpha, sigma = c["alpha"][k], c["sigma"][k]
        r2 = sigma**2 / (alpha**2 + sigma**2)
        m = alpha * x / (alpha**2 + sigma**2)
        S = r2 * A @ A.T + sigma_y**2 * torch.eye(3, dtype=F64, device=device)
        exact = alpha / (alpha**2 + sigma**2) * torch.linalg.solve(S, (y - m @ A.T).T).T @ A
        _, guidance = solver.guidance(score, x, k, c)
        scale = exact.abs().max()
        assert (guidance - exact).abs().max() < ulps(2000, scale) / min(r2.item(), 1.0), (k, sigma_y)


@pytest.mark.parametrize("sigma_y", [0.0, 0.3])
def test_pigdm_converges_to_the_exact_posterior_of_a_standard_normal_prior(device, sigma_y):
    """With exact guidance ΠGDM is ancestral sampling of p(x | y): its exact W2 to the posterior falls at least
    2× with every 4× more steps (first order would give 4×), and its mean is exact up to the prior draw's
    α_T-sized error."""
    sde, d = scoresde.VPSDE(), 4
    prior = random_gaussian(d, 0, isotropic=True)
    g = torch.Generator().manual_seed(10)
    A = torch.randn(2, d, generator=g, dtype=F64)
    y = A @ prior.sample(1, generator=g)[0] + sigma_y * torch.randn(2, generator=g, dtype=F64)
    post = inverse.posterior(prior, A, y, sigma_y)
    w2 = []
    for steps in (25, 100, 400):
        m, C = exact_moments(solver_run(prior, sde, inverse.Dense(A), "pigdm", sigma_y, steps), y, device)
        w2.append(gaussian_w2(m, C, post.mean(), post.cov()))
        alpha_T = sde.marginal_coeffs(torch.tensor(sde.T, dtype=F64))[0].item()
        assert (m - post.mean()).norm() < 10 * alpha_T
    print("pigdm W2 by steps 25, 100, 400:", w2)
    assert w2[1] < w2[0] / 2 and w2[2] < w2[1] / 2


# ---------------------------------------------------------------- σ_y is used

@pytest.mark.parametrize("method", ["pigdm", "ddrm"])
def test_methods_that_read_sigma_y_target_the_noisy_posterior(device, method):
    """With σ_y = 0.5 the exact output is nearer (W2) the posterior with σ_y = 0.5 than the noiseless one: catches
    a solver that ignores σ_y."""
    sde, d = scoresde.VPSDE(), 4
    prior = random_gaussian(d, 11)
    g = torch.Generator().manual_seed(12)
    A = torch.randn(2, d, generator=g, dtype=F64)
    y = A @ prior.sample(1, generator=g)[0] + 0.5 * torch.randn(2, generator=g, dtype=F64)
    m, C = exact_moments(solver_run(prior, sde, inverse.Dense(A), method, 0.5, 100), y, device)
    noisy, clean = (inverse.posterior(prior, A, y, s) for s in (0.5, 0.0))
    near, far = (gaussian_w2(m, C, p.mean(), p.cov()) for p in (noisy, clean))
    print(f"{method}: W2 to the sigma_y = 0.5 posterior {near:.4f}, to the noiseless one {far:.4f}")
    assert near < far


def test_ddnm_plus_does_not_pin_the_output_to_noisy_y(device):
    """DDNM⁺ corrects x̂_0 only as far as the move's noise absorbs the observation's: with σ_y > 0, A x keeps a
    variance (DDNM with σ_y ignored would give A x = y exactly), and less of the correction reaches the output
    as σ_y grows."""
    sde, d = scoresde.VPSDE(), 4
    prior = random_gaussian(d, 11)
    g = torch.Generator().manual_seed(12)
    A = torch.randn(2, d, generator=g, dtype=F64)
    y = A @ prior.sample(1, generator=g)[0]
    spread = []
    for sigma_y in (0.0, 0.2, 1.0):
        m, C = exact_moments(solver_run(prior, sde, inverse.Dense(A), "ddnm", sigma_y, 50), y, device)
        spread.append(torch.trace(A @ C @ A.T).item())
    print("DDNM: trace Cov(A x) for sigma_y = 0, 0.2, 1:", spread)
    assert spread[0] < ulps(1000, 1.0) and 0 < spread[1] < spread[2]


# ---------------------------------------------------------------- SMC

def test_systematic_resampling_gives_floor_or_ceil_copies():
    w = torch.tensor([[0.05, 0.45, 0.2, 0.3]], dtype=F64)
    for u in (0.0, 0.3, 0.999):
        counts = torch.bincount(systematic(w, torch.tensor([u], dtype=F64))[0], minlength=4)
        assert counts.sum() == 4
        assert bool(((counts >= torch.floor(4 * w[0])) & (counts <= torch.ceil(4 * w[0]))).all())


@pytest.mark.parametrize("sigma_y", [0.0, 0.3])
def test_smc_error_falls_as_the_particles_grow(device, sigma_y):
    """The self-normalised estimate of E[x | y] from N particles has mean-square error ≈ c/N + bias² (the model
    chain's own error): from N = 4 to N = 256 it must fall by more than 8× (the rate alone gives 64×)."""
    sde, d, runs = scoresde.VPSDE(), 4, 256
    prior = random_gaussian(d, 13)
    g = torch.Generator().manual_seed(14)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=F64)
    y = mask * (prior.sample(1, generator=g)[0] + sigma_y * torch.randn(d, generator=g, dtype=F64))
    post = inverse.posterior(prior, inverse.Inpaint(mask), y, sigma_y, shape=(d,))
    mse = {}
    for N in (4, 16, 64, 256):
        sol = inverse.solve(prior.score_fn(sde), sde, y[None].expand(runs, d).to(device), inverse.Inpaint(mask),
                            method="smc", sigma_y=sigma_y, particles=N, generator=gen(device, N),
                            sampler=get_sampler("ancestral", steps=100, progress=False))
        w = sol.info["log_weights"].exp()
        estimate = (w[..., None] * sol.info["particles"]).sum(1).cpu()
        mse[N] = ((estimate - post.mean()) ** 2).sum(1).mean().item()
        assert sol.info["ess"].shape == (runs, 100) and bool((sol.info["ess"] <= N + 1e-9).all())
    print("SMC mean-square error of E[x | y] by particles:", mse)
    assert mse[4] > mse[16] > mse[64] > mse[256] and mse[256] < mse[4] / 8


def test_smc_resampling_keeps_the_effective_sample_size_up(device):
    """Without resampling (threshold = 0) the weights multiply over the steps and the ESS decays towards 1
    (sequential importance sampling degenerates); with it (threshold = 1: every step) each step's ESS is that
    step's increment alone."""
    sde, d = scoresde.VPSDE(), 4
    prior = random_gaussian(d, 15)
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=F64)
    y = (mask * prior.means[0])[None].expand(8, d).to(device)
    ess = {}
    for threshold in (0.0, 1.0):
        sol = inverse.solve(prior.score_fn(sde), sde, y, inverse.Inpaint(mask), method="smc", particles=32,
                            threshold=threshold, generator=gen(device),
                            sampler=get_sampler("ancestral", steps=30, progress=False))
        ess[threshold] = sol.info["ess"][:, 10:-2].mean().item() / 32  # mean relative ESS, later steps
    print("mean relative ESS, never / always resampling:", ess)
    assert ess[0.0] < 0.3 < 0.6 < ess[1.0]


# ---------------------------------------------------------------- DPS

def test_dps_with_zero_step_is_the_plain_sampler_and_its_step_lowers_the_misfit(device):
    sde, d = scoresde.VPSDE(), 4
    prior = random_gaussian(d, 16)
    g = torch.Generator().manual_seed(17)
    A = torch.randn(2, d, generator=g, dtype=F64).to(device)
    forward = lambda x: torch.tanh(x @ A.T)  # noqa: E731  a non-linear forward model
    y = forward(prior.sample(64, generator=g).to(device))
    sampler = get_sampler("ancestral", steps=20, progress=False)
    score = prior.score_fn(sde)
    plain = sampler(score, sde, (64, d), generator=gen(device), device=device, dtype=F64)[0]
    x, nfe = inverse.solve(score, sde, y, forward, method="dps", zeta=0.0, shape=(d,), sampler=sampler,
                           generator=gen(device))
    assert (x - plain).abs().max() < ulps(200, plain) and nfe == 20
    solver = inverse.DPS(sampler, forward, y, shape=(d,), zeta=0.01)
    counted = scoresde.score.CountedScore(scoresde.score.as_score(score))
    xt = torch.randn(64, d, generator=g, dtype=F64).to(device) * 0.5
    c = solver.tables(counted, sde, solver.time_grid(sde), xt)
    k = 15
    noise = c["c"][k] * torch.randn(xt.shape, generator=gen(device, 1), dtype=F64, device=device)
    with torch.no_grad():
        delta = solver.move(counted, xt, k, c, gen(device, 1)) - solver.ddim(
            xt, solver.x0_hat(counted, xt, k, c), k, c, noise)  # −ζ ∇_{x_t} ‖y − 𝒜(x̂_0(x_t))‖
        misfit = lambda z: (y - forward(solver.x0_hat(counted, z, k, c))).norm(dim=1)  # noqa: E731
        assert bool((misfit(xt + delta) < misfit(xt)).all())  # a small step down the gradient lowers the misfit


def test_rank_deficient_dense_operator_has_a_null_space_not_huge_inverses(device):
    op = inverse.Dense(torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]], dtype=F64)).bind((4,))
    s = op.singulars(torch.zeros(1, 4, dtype=F64, device=device))
    assert s[1] == 0 and abs(s[0].item() - math.sqrt(20)) < ulps(20, 5.0)
    y = torch.tensor([[1.0, 2.0]], dtype=F64, device=device)  # in the range
    assert op.pinv(y).abs().max() < 1 and (op.A(op.pinv(y)) - y).abs().max() < ulps(50, 2.0)
    sde, prior = scoresde.VPSDE(), random_gaussian(4, 22)
    x, _ = inverse.solve(prior.score_fn(sde), sde, y.expand(3, 2), op, method="ddrm", generator=gen(device),
                         sampler=get_sampler("ancestral", steps=6, progress=False))
    assert (op.A(x) - y).abs().max() < ulps(500, 2.0)


@pytest.mark.parametrize("method", ["ddrm", "pigdm", "ddnm", "smc", "replacement", "dps"])
def test_float32_images_with_the_default_blur(device, method):
    """What the CLI runs: float32 images, the default Blur (its near-null frequencies removed), σ_y > 0."""
    sde, d = scoresde.VPSDE(), 2 * 16 * 16
    L = torch.randn(d, d, generator=torch.Generator().manual_seed(23), dtype=F64) / math.sqrt(d)
    prior = analytic.GaussianMixture([1.0], torch.zeros(1, d, dtype=F64), (L @ L.T + 0.1 * torch.eye(d))[None])
    score = prior.score_fn(sde)  # pixels of variance ~1, correlated
    f32 = lambda x, t: score(x.double(), t.double()).float()  # noqa: E731  a float32 model
    truth = prior.sample(2, generator=torch.Generator().manual_seed(24)).reshape(2, 2, 16, 16).float().to(device)
    op = inverse.build_operator("blur", (2, 16, 16))
    y = op.A(truth) + 0.05 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(25)).to(device)
    options = {"particles": 2} if method == "smc" else {}
    with pytest.warns(UserWarning, match="does not read sigma_y") if method == "replacement" else nullcontext():
        x, _ = inverse.solve(f32, sde, y, op, method=method, sigma_y=0.05, generator=gen(device), **options,
                             sampler=get_sampler("ancestral", steps=8, progress=False))
    assert x.dtype == torch.float32 and x.shape == truth.shape and bool(torch.isfinite(x).all())
    noise = 0.05 * math.sqrt(d)  # ‖σ_y ε‖
    if method == "dps":  # no consistency promise at 8 steps with ζ = 1
        return
    assert (op.A(x) - y).flatten(1).norm(dim=1).max() < 2 * noise + (op.A(truth) - y).flatten(1).norm(dim=1).max()


# ---------------------------------------------------------------- calling convention, seeds, bad input

def test_every_method_runs_through_solve_with_per_sample_seeds(device):
    sde = scoresde.VPSDE()
    prior = random_gaussian(16, 18)
    x = prior.sample(3, generator=torch.Generator().manual_seed(19)).reshape(3, 1, 4, 4).to(device)
    op = inverse.Inpaint(MASK[..., :4, :4])
    y = op.bind((1, 4, 4)).A(x)
    for method, cls in inverse.METHODS.items():
        sigma_y = 0.0 if cls.exact_y else 0.1  # the projection methods take y as exact
        run = lambda yy, seeds: inverse.solve(prior.score_fn(sde), sde, yy, op, method=method,  # noqa: E731
                                              sampler=get_sampler("ancestral", steps=5, progress=False),
                                              seeds=seeds, sigma_y=sigma_y,
                                              **({"particles": 2} if method == "smc" else {}))
        if method == "smc":
            with pytest.raises(ValueError, match="give generator, not seeds"):
                run(y, [0, 1, 2])
            continue
        a, nfe = run(y, [0, 1, 2])
        b, _ = run(y[1:], [1, 2])
        assert a.shape == x.shape and nfe == (5 if method != "repaint" else 5 + 4 * 4)
        assert (a[1:] - b).abs().max() < ulps(100, a), method  # sample i depends on seeds[i] only


def test_bad_input_is_refused_naming_the_argument():
    sde = scoresde.VPSDE()
    prior = random_gaussian(4, 20)
    score = prior.score_fn(sde)
    y = torch.zeros(2, 4, dtype=F64)
    op = inverse.Inpaint(torch.tensor([1.0, 1, 0, 0]))
    s = get_sampler("ancestral", steps=5, progress=False)
    with pytest.raises(ValueError, match="sigma_y"):
        inverse.solve(score, sde, y, op, method="ddrm", sigma_y=-0.1, sampler=s)
    with pytest.raises(ValueError, match="method 'ddrm' needs operator to be a LinearOperator"):
        inverse.solve(score, sde, y, lambda x: x, method="ddrm", sampler=s, shape=(4,))
    with pytest.raises(ValueError, match="cannot wrap sampler 'unipc'"):
        inverse.solve(score, sde, y, op, method="pigdm", sampler=get_sampler("unipc", steps=5))
    with pytest.raises(ValueError, match="does not fit data of shape"):
        inverse.solve(score, sde, torch.zeros(2, 5, dtype=F64), op, method="ddnm", sampler=s)
    with pytest.raises(ValueError, match="y must be observations of shape"):
        inverse.solve(score, sde, torch.zeros(2, 3, dtype=F64), inverse.Dense(torch.ones(2, 4)), method="ddnm",
                      sampler=s)
    with pytest.raises(ValueError, match="method must be one of"):
        inverse.solve(score, sde, y, op, method="dsp", sampler=s)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['particles'\] for method 'ddrm'"):
        inverse.solve(score, sde, y, op, method="ddrm", sampler=s, particles=4)
    with pytest.raises(ValueError, match="needs a stochastic move"):
        inverse.solve(score, sde, y, op, method="smc", sampler=get_sampler("ddim", steps=5))
    with pytest.raises(ValueError, match="shape"):
        inverse.solve(score, sde, y, lambda x: x, method="dps", sampler=s)
    with pytest.raises(ValueError, match="operator maps x of shape"):
        inverse.solve(score, sde, y, lambda x: x[:, :2], method="dps", sampler=s, shape=(4,))
    with pytest.raises(ValueError, match="with ddim at eta=0 there is none"):
        inverse.solve(score, sde, y, op, method="ddnm", sigma_y=0.1, sampler=get_sampler("ddim", steps=5))
    with pytest.raises(ValueError, match="trajectory of weighted particles"):
        inverse.solve(score, sde, y, op, method="smc", sampler=get_sampler("ancestral", steps=5,
                                                                           return_trajectory=True))
    with pytest.raises(ValueError, match="sigma_y"):
        inverse.solve(score, sde, y, op, method="replacement", sigma_y=-1.0, sampler=s)
