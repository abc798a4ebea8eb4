"""Exact tests of the discrete variational bound (Ho et al. 2020, Eq. 5) and the reverse variances.

Gaussian data x_0 ~ N(0, s² I): q(x_t) = N(0, c_t I) with c_t = ᾱ_t s² + 1 − ᾱ_t, the score is −x/c_t, and the
true reverse kernel q(x_s | x_t) = N((a c_s/c_t) x_t, c_s β/c_t I) (a² = ᾱ_t/ᾱ_s, β = 1 − a²) is Gaussian. Then:
- E L_{t−1} = KL(q(x_{t−1}|x_t, x_0) ‖ q(x_{t−1}|x_t)) averaged = (d/2) log(V_t/β̃_t), V_t = c_{t−1} β_t/c_t: the
  conditional mutual information I(x_{t−1}; x_0 | x_t), which is not 0 even for the exact kernel;
- Σ_{t≥2} E L_{t−1} = I(x_0; x_1) − I(x_0; x_T), I(x_0; x_t) = (d/2) log(c_t/(1 − ᾱ_t)) (chain rule of information);
- with a Gaussian density decoder, E L_vlb = h(x_0) + KL(q(x_T) ‖ N(0, I)): the bound is the exact NLL up to L_T's gap.
"""
import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

import scoresde
from problems import isotropic_ddpm_score
from scoresde._utils import append_dims
from scoresde.parameterization import get_score_fn
from scoresde.respace import respaced_times
from scoresde.variances import analytic_variance, score_second_moment
from scoresde.vlb import Chain, discretized_gaussian_log_likelihood, variational_bound
from tolerance import ulps

F64 = torch.float64
S2 = 0.25  # data variance s²


def exact_score(sde, s2=S2):
    return isotropic_ddpm_score(sde, s2)


def c_of(abar, s2=S2):
    return abar * s2 + 1 - abar


def learned_model(sde, d):
    """A discrete ε-model with a learned variance output: ε = σ x / c_t · 0.9 + 0.05 sin(x), v = 0.3 + 0.2 tanh(x)."""
    abar = sde.alphas_cumprod

    def model(x, index):
        a = append_dims(abar[index].to(x.dtype), x.ndim)
        eps = 0.9 * (1 - a).sqrt() * x / c_of(a) + 0.05 * torch.sin(x)
        return torch.cat([eps, 0.3 + 0.2 * torch.tanh(x)], 1)

    return get_score_fn(model, sde, "eps", continuous=False, learned_variance=True)


@pytest.mark.parametrize("respacing", [None, "ddim25", [0, 3, 7, 500, 999]])
def test_each_term_is_the_closed_form_gaussian_kl(respacing, device):
    """Every L_{t−1} (β, β̃ and learned Σ) equals KL(N(μ̃, β̃) ‖ N(μ_θ, Σ)) written in Ho et al.'s notation (Eqs. 7, 11),
    L_T the prior KL and L_0 the decoder's mass from Normal.cdf, on fixed draws, to 1e-10."""
    sde, d, B = scoresde.VPSDE(), 3, 6
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(B, d, generator=g, dtype=F64) * 254).round().sub(127).div(127.5).to(device)  # 8-bit values
    noise = torch.randn(B, d, generator=g, dtype=F64).to(device)
    score_fn = learned_model(sde, d)
    chain = Chain(score_fn, sde, respacing)
    steps = [round(t * 1000) for t in chain.ts.tolist()]  # DDPM steps i (1-based) of the chain, decreasing
    abar_all = torch.cat([torch.ones(1, dtype=F64), sde.alphas_cumprod])
    for k in sorted({0, 1, len(chain) // 2, len(chain) - 2, len(chain) - 1}):
        i, j = steps[k], (steps[k + 1] if k + 1 < len(chain) else 0)
        ab_t, ab_s = abar_all[i].item(), abar_all[j].item()
        beta = 1 - ab_t / ab_s  # respaced β (DDPM's β_i when j = i − 1)
        beta_tilde = (1 - ab_s) / (1 - ab_t) * beta
        x_t = math.sqrt(ab_t) * x0 + math.sqrt(1 - ab_t) * noise
        eps = -math.sqrt(1 - ab_t) * score_fn(x_t, torch.full((B,), i / 1000, dtype=F64, device=device))
        v = 0.3 + 0.2 * torch.tanh(x_t)
        mu_q = math.sqrt(ab_s) * beta / (1 - ab_t) * x0 + math.sqrt(ab_t / ab_s) * (1 - ab_s) / (1 - ab_t) * x_t
        mu_p = (x_t - beta / math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t / ab_s)
        if j == 0:  # β̃ = 0 at the decoder: the next step's β̃ (Nichol & Dhariwal's clip)
            i2, j2 = steps[k - 1], i
            b2 = 1 - abar_all[i2].item() / abar_all[j2].item()
            beta_tilde = (1 - abar_all[j2].item()) / (1 - abar_all[i2].item()) * b2
        variances = {"beta": torch.full_like(x0, beta), "beta_tilde": torch.full_like(x0, beta_tilde),
                     "learned": torch.exp(v * math.log(beta) + (1 - v) * math.log(beta_tilde))}
        got = chain.terms(score_fn, x0, torch.full((B,), k, device=device), tuple(variances), noise=noise)
        for name, var in variances.items():
            if j > 0:
                want = kl_divergence(Normal(mu_q, math.sqrt((1 - ab_s) / (1 - ab_t) * beta)), Normal(mu_p, var.sqrt()))
                want = want.sum(1)
            else:
                p = Normal(mu_p, var.sqrt())
                lo = torch.where(x0 < -0.999, torch.zeros_like(x0), p.cdf(x0 - 1 / 255))
                hi = torch.where(x0 > 0.999, torch.ones_like(x0), p.cdf(x0 + 1 / 255))
                want = -(hi - lo).log().sum(1)
            torch.testing.assert_close(got[name], want, rtol=1e-10, atol=1e-10, msg=f"{name} at step {i}")
    top = steps[0]
    prior = kl_divergence(Normal(abar_all[top].sqrt().item() * x0, math.sqrt(1 - abar_all[top].item())),
                          Normal(torch.zeros_like(x0), 1.0)).sum(1)
    torch.testing.assert_close(chain.prior_term(x0, 1.0), prior, rtol=1e-12, atol=1e-12)


def test_discretized_decoder_sums_to_one_over_256_bins():
    """Σ over the 256 values −1 + 2k/255 of p(x | μ, σ) is 1, for means inside and outside [−1, 1] and σ from 2e-6 to
    20; each interior bin equals Φ((x + 1/255 − μ)/σ) − Φ((x − 1/255 − μ)/σ)."""
    x = (torch.arange(256, dtype=F64) * 2 / 255 - 1)[:, None].expand(256, 30)
    mean = torch.tensor([-1.5, -1.0, -0.3, 0.0, 0.9999, 2.0], dtype=F64).repeat_interleave(5)[None].expand(256, 30)
    log_std = torch.tensor([-13.0, -6.0, -3.0, 0.0, 3.0], dtype=F64).repeat(6)[None].expand(256, 30)
    logp = discretized_gaussian_log_likelihood(x, mean, 2 * log_std)
    torch.testing.assert_close(logp.exp().sum(0), torch.ones(30, dtype=F64), rtol=0, atol=1e-10)
    n = Normal(mean[1:-1], log_std[1:-1].exp())
    mass = n.cdf(x[1:-1] + 1 / 255) - n.cdf(x[1:-1] - 1 / 255)
    # A difference of two cdf values in [0, 1] keeps their absolute error, a few ulps of 1 on either side (the
    # reference's cdf through erf too): atol = 64 ulps of 1; rtol covers log_ndtr's tail branch.
    torch.testing.assert_close(logp[1:-1].exp(), mass, rtol=1e-9, atol=ulps(64))
    assert bool(torch.isfinite(logp).all())  # far tails: log-mass from log_ndtr, never log(0)


def test_analytic_variance_is_the_exact_reverse_variance():
    """With Γ_t = E‖∇log q_t‖²/d = 1/c_t, Analytic-DPM's Σ* equals the true reverse variance c_s β/c_t on every
    step of the full and a respaced chain, and Var(x_0 | x_1) = s²(1 − ᾱ_1)/c_1 at the decoder, up to rounding."""
    sde = scoresde.VPSDE()
    for respacing in (None, "ddim25", "10,15,20"):
        chain = Chain(exact_score(sde), sde, respacing)
        ab_t = chain.alpha_t**2
        ab_s = chain.alpha_s**2
        c_t, c_s = c_of(ab_t), c_of(ab_s)
        c_s[-1] = S2  # q(x_0) = N(0, s²)
        sigma = analytic_variance(chain.alpha_t, chain.sigma_t, chain.alpha_s, chain.sigma_s, 1 / c_t)
        # 1 − ᾱ_t/ᾱ_s and 1 − ᾱ_1 cancel (down to 1e-4): their error is a few ulps of 1, times c_s/c_t ≤ 4,
        # so the tolerance is absolute (about 32 roundings on either side).
        torch.testing.assert_close(sigma, c_s * (1 - ab_t / ab_s) / c_t, rtol=0, atol=ulps(32, c_s / c_t))
        torch.testing.assert_close(sigma[-1], S2 * (1 - ab_t[-1]) / c_t[-1], rtol=0, atol=ulps(32, S2 / c_t[-1]))


def test_analytic_variance_estimated_from_data():
    """Γ_t estimated from n = 20 000 data samples with the exact score is 1/c_t within 4 standard errors
    (‖x_t‖²/c_t ~ χ²_d, so se = √(2/(n d))/c_t), and the analytic Σ* is the exact reverse variance within the error
    that propagates, (α_s σ_t/α_t − √(σ_s² − β̃))² σ_t² · 4 se."""
    sde, n, d = scoresde.VPSDE(), 20000, 4
    score = exact_score(sde)
    x0 = S2**0.5 * torch.randn(n, d, generator=torch.Generator().manual_seed(1), dtype=F64)
    chain = Chain(score, sde, "ddim25")
    gamma = score_second_moment(score, chain.sde, x0, chain.ts, torch.Generator().manual_seed(2))
    c_t = c_of(chain.alpha_t**2)
    se = (2 / (n * d)) ** 0.5 / c_t
    assert bool(((gamma - 1 / c_t).abs() <= 4 * se).all()), ((gamma - 1 / c_t) / se).tolist()
    exact = analytic_variance(chain.alpha_t, chain.sigma_t, chain.alpha_s, chain.sigma_s, 1 / c_t)
    estimated = analytic_variance(chain.alpha_t, chain.sigma_t, chain.alpha_s, chain.sigma_s, gamma)
    coef = chain.alpha_s * chain.sigma_t / chain.alpha_t - (chain.sigma_s**2 - chain.beta_tilde).sqrt()
    assert bool(((estimated - exact).abs() <= coef**2 * chain.sigma_t**2 * 4 * se + 1e-15).all())


@pytest.fixture(scope="module")
def exact_bound():
    """The bound of the exact model (posterior mean from the true score, analytic = exact variance) on Gaussian data,
    8-D, 3000 samples, with a Gaussian density decoder."""
    sde, d = scoresde.VPSDE(), 8
    x0 = S2**0.5 * torch.randn(3000, d, generator=torch.Generator().manual_seed(3), dtype=F64)
    score = exact_score(sde)
    chain = Chain(score, sde)
    bound = variational_bound(score, sde, x0, "analytic", decoder="gaussian", gamma=1 / c_of(chain.alpha_t**2),
                              generator=torch.Generator().manual_seed(4))
    return sde, d, x0, chain, bound


def _within(samples, want, k=5):
    """|mean − want| ≤ k standard errors, and the standard error is small enough to mean something."""
    mean, se = samples.mean().item(), samples.std().item() / len(samples) ** 0.5
    assert abs(mean - want) <= k * se, f"mean {mean:.6g} ± {se:.2g}, want {want:.6g}"
    return se


def test_each_exact_kl_term_is_the_conditional_information(exact_bound):
    """E L_{t−1} = (d/2) log(V_t/β̃_t) for the exact kernel (not 0: q(x_{t−1}|x_t, x_0) is narrower than q(x_{t−1}|x_t))."""
    sde, d, x0, chain, bound = exact_bound
    for k in (0, 10, 500, 900, 990, len(chain) - 2):
        ab_t, ab_s = chain.alpha_t[k].item() ** 2, chain.alpha_s[k].item() ** 2
        V, beta_tilde = c_of(ab_s) * (1 - ab_t / ab_s) / c_of(ab_t), chain.beta_tilde[k].item()
        se = _within(bound.kl[:, k], d / 2 * math.log(V / beta_tilde))
        assert se < 0.1 * d / 2 * math.log(V / beta_tilde)


def test_exact_bound_telescopes_to_the_mutual_information(exact_bound):
    """Σ_{t≥2} E L_{t−1} = I(x_0; x_1) − I(x_0; x_T), and L_T is the closed-form prior KL per sample."""
    sde, d, x0, chain, bound = exact_bound
    info = lambda ab: d / 2 * math.log(c_of(ab) / (1 - ab))
    ab_1, ab_T = chain.alpha_t[-1].item() ** 2, chain.alpha_t[0].item() ** 2
    se = _within(bound.kl.sum(1), info(ab_1) - info(ab_T))
    assert se < 0.01 * (info(ab_1) - info(ab_T))
    prior = 0.5 * (ab_T * x0**2 + (1 - ab_T) - 1 - math.log(1 - ab_T)).sum(1)
    torch.testing.assert_close(bound.prior, prior, rtol=1e-12, atol=1e-12)


def test_exact_bound_is_the_exact_nll_up_to_the_prior(exact_bound):
    """With the exact kernels and a Gaussian decoder, E L_vlb = h(x_0) + KL(q(x_T) ‖ N(0, I)) (the gap is only L_T's)."""
    sde, d, x0, chain, bound = exact_bound
    c_T = c_of(chain.alpha_t[0].item() ** 2)
    entropy = d / 2 * math.log(2 * math.pi * math.e * S2)
    _within(bound.total, entropy + d * 0.5 * (c_T - 1 - math.log(c_T)))
    assert bound.bpd.shape == (3000,) and set(bound.summary()) == {"prior_bpd", "kl_bpd", "decoder_bpd", "bpd"}
