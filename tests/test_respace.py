"""Respacing (Nichol & Dhariwal 2021) and the samplers' reverse variances: learned (Eq. 15) and Analytic-DPM."""
import math

import pytest
import torch

import scoresde
from problems import isotropic_ddpm_score
from scoresde._utils import append_dims
from scoresde.parameterization import get_score_fn
from scoresde.respace import respaced_steps, respaced_times
from scoresde.sampling import get_sampler
from scoresde.sampling.grids import for_model
from tolerance import ulps

F64 = torch.float64
S2 = 0.25


def exact_score(sde, s2=S2):
    return isotropic_ddpm_score(sde, s2)


def constant_v_model(sde, v0):
    """A discrete ε-model (exact for N(0, s²) data) whose learned-variance output v is v0, or v0(x) if callable."""
    abar = sde.alphas_cumprod

    def model(x, index):
        a = append_dims(abar[index].to(x.dtype), x.ndim)
        v = v0(x) if callable(v0) else torch.full_like(x, v0)
        return torch.cat([(1 - a).sqrt() * x / (a * S2 + 1 - a), v], 1)

    return get_score_fn(model, sde, "eps", continuous=False, learned_variance=True)


@pytest.mark.parametrize("spec, N, want", [
    ("4", 10, [0, 3, 6, 9]),
    ("4", 20, [0, 6, 13, 19]),         # stride 19/3: 12.67 rounds up
    ("3", 10, [0, 4, 9]),              # stride 4.5: round(4.5) = 4, as Python (and guided-diffusion) rounds
    ("2,3", 10, [0, 4, 5, 7, 9]),      # two sections of 5 steps
    ("3,2", 11, [0, 2, 5, 6, 10]),     # sections of 6 and 5 steps: the first takes the remainder
    ("ddim5", 10, [0, 2, 4, 6, 8]),
    ("ddim3", 10, [0, 4, 8]),          # the first stride giving exactly 3 steps
    ("ddim25", 1000, list(range(0, 1000, 40))),
    ("10", 10, list(range(10))),
    ([9, 0, 3, 3], 10, [0, 3, 9]),
])
def test_respaced_steps_as_guided_diffusion_spells_them(spec, N, want):
    assert respaced_steps(spec, N) == want


def test_respaced_steps_250_of_1000():
    steps = respaced_steps("250", 1000)
    assert len(steps) == 250 and steps[0] == 0 and steps[-1] == 999 and steps[:4] == [0, 4, 8, 12]
    assert set(respaced_steps("ddim1000", 1000)) == set(range(1000))


@pytest.mark.parametrize("spec, match", [
    ("ddim7", r"no integer stride gives exactly 7 of 10 steps"),
    ("11", r"a section of 10 steps cannot hold 11"),
    ("fast", r"respacing must be like '250', '10,15,20' or 'ddim25', got 'fast'"),
    ([0, 10], r"timesteps in \{0, …, N−1\} = \{0, …, 9\}"),
    (2.5, r"respacing must be a string .* got 2.5 \(float\)"),
])
def test_respacing_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        respaced_steps(spec, 10)


def test_respacing_every_step_is_ddpm():
    """respacing "1000" (every step kept) gives the same samples as steps=1000, DDPM's own grid (tested against
    a hand-written DDPM loop in test_samplers), for the ancestral sampler and DDIM."""
    sde = scoresde.VPSDE()
    for name in ("ancestral", "ddim"):
        a, na = get_sampler(name, respacing="1000", progress=False)(exact_score(sde), sde, (8, 3), dtype=F64,
                                                                    generator=torch.Generator().manual_seed(0))
        b, nb = get_sampler(name, steps=1000, progress=False)(exact_score(sde), sde, (8, 3), dtype=F64,
                                                              generator=torch.Generator().manual_seed(0))
        assert na == nb == 1000 and torch.equal(a, b)


@pytest.mark.parametrize("spec", ["ddim25", "50", "10,15,20", [0, 1, 2, 500, 998]])
def test_respacing_keeps_alpha_bar_and_recomputes_beta(spec):
    """The respaced grid sits on the kept steps, where ᾱ is DDPM's own, and each step's β is 1 − ᾱ_t/ᾱ_s (the
    ancestral sampler's variance="beta" std²), β̃ = (1 − ᾱ_s)/(1 − ᾱ_t) β."""
    sde = scoresde.VPSDE()
    kept = respaced_steps(spec, 1000)
    model_sde, ts = for_model(sde, respaced_times(spec, 1000), exact_score(sde))
    assert torch.equal(ts, respaced_times(spec, 1000))
    abar = model_sde.marginal_coeffs(ts)[0] ** 2
    # exp(−½∫β)² against a cumulative product of up to N = 1000 factors: each side is off by up to N ulps of
    # (1 + ∫β) relatively (∫β = −log ᾱ_N ≈ 10 here), in whatever order the products run.
    n_ops = sde.N * (1 - sde.alphas_cumprod[-1].log().item())
    torch.testing.assert_close(abar, sde.alphas_cumprod[kept].flip(0), rtol=ulps(n_ops), atol=0)
    ab_t, ab_s = abar[:-1], abar[1:]
    beta = 1 - ab_t / ab_s
    std_beta = get_sampler("ancestral", respacing=spec, variance="beta").prepare(model_sde, ts)["std"]
    std_tilde = get_sampler("ancestral", respacing=spec).prepare(model_sde, ts)["std"]
    # β = 1 − ᾱ_t/ᾱ_s cancels (β ≈ 1e-4 on the first steps): it keeps the absolute error of the ratio, a few ulps
    # of 1, so the tolerance is absolute; so is β̃'s, whose factor (1 − ᾱ_s)/(1 − ᾱ_t) ≤ 1 cancels the same way.
    torch.testing.assert_close(std_beta**2, beta, rtol=0, atol=ulps(16))
    torch.testing.assert_close(std_tilde**2, (1 - ab_s) / (1 - ab_t) * beta, rtol=0, atol=ulps(32))


def test_learned_variance_interpolates_the_respaced_beta_and_beta_tilde():
    """One respaced step with v(x) = 0.3 + tanh(x): x_s = μ̃(x_t, x̂_0) + exp(½(v log β + (1 − v) log β̃)) z with the
    respaced β, β̃; v = 1 and v = 0 give exactly the sampler with variance "beta" and "beta_tilde"; one NFE per step."""
    sde = scoresde.VPSDE()
    g = lambda: torch.Generator().manual_seed(5)
    score = constant_v_model(sde, lambda x: 0.3 + torch.tanh(x))
    x, nfe, traj = get_sampler("ancestral", respacing=[199, 599], denoise=False, progress=False,
                               return_trajectory=True)(score, sde, (6, 4), generator=g(), dtype=F64)
    assert nfe == 1
    ab_t, ab_s = sde.alphas_cumprod[599].item(), sde.alphas_cumprod[199].item()
    beta = 1 - ab_t / ab_s
    beta_tilde = (1 - ab_s) / (1 - ab_t) * beta
    x_t = traj[0]
    eps = math.sqrt(1 - ab_t) * x_t / (ab_t * S2 + 1 - ab_t)
    x0_hat = (x_t - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)
    mean = math.sqrt(ab_s) * beta / (1 - ab_t) * x0_hat + math.sqrt(ab_t / ab_s) * (1 - ab_s) / (1 - ab_t) * x_t
    v = 0.3 + torch.tanh(x_t)
    gen = g()
    torch.randn(6, 4, generator=gen, dtype=F64)  # x_T
    z = torch.randn(6, 4, generator=gen, dtype=F64)
    torch.testing.assert_close(x, mean + torch.exp(0.5 * (v * math.log(beta) + (1 - v) * math.log(beta_tilde))) * z,
                               rtol=1e-12, atol=1e-12)
    for v0, fixed in ((1.0, "beta"), (0.0, "beta_tilde")):
        for name, opts in (("ancestral", {}), ("ddim", {"eta": 1.0})):
            a, _ = get_sampler(name, respacing="ddim20", progress=False, **opts)(
                constant_v_model(sde, v0), sde, (6, 4), generator=g(), dtype=F64)
            b, _ = get_sampler("ancestral", respacing="ddim20", variance=fixed, progress=False)(
                exact_score(sde), sde, (6, 4), generator=g(), dtype=F64)
            if name == "ancestral" or fixed == "beta_tilde":  # DDIM caps c at σ_s, so only β̃ is the same there
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=f"{name} v={v0}")


def test_variance_choices_and_declarations():
    sde = scoresde.VPSDE()
    with pytest.raises(ValueError, match=r"variance='learned' needs a score function that declares"):
        get_sampler("ancestral", variance="learned", steps=3, progress=False)(exact_score(sde), sde, (2, 2))
    with pytest.raises(ValueError, match=r"variance must be one of \['analytic', 'beta', 'beta_tilde', 'learned'\]"):
        get_sampler("ancestral", variance="large")
    with pytest.raises(ValueError, match=r"variance='analytic' needs data=x0"):
        get_sampler("ancestral", variance="analytic", steps=3, progress=False)(exact_score(sde), sde, (2, 2))
    with pytest.raises(ValueError, match=r"respacing='ddim25' sets the steps itself"):
        get_sampler("ddim", respacing="ddim25", steps=25)
    bad = get_score_fn(lambda x, i: x, sde, continuous=False, learned_variance=True)
    with pytest.raises(ValueError, match=r"learned-variance model must return twice the channels of x \(2, 2\)"):
        bad(torch.zeros(2, 2), torch.full((2,), 0.5))


def test_analytic_variance_sampler_on_gaussian_data():
    """25 respaced ancestral steps with the exact score on N(0, s² I) data: Analytic-DPM's variance (Γ from 4000 data
    samples) gives x_{t_1} the exact variance c_1 within 4 standard errors; σ² = β̃ and β miss it by more than 10 (measured: −49 and +20)."""
    sde, n, d = scoresde.VPSDE(), 20000, 2
    data = S2**0.5 * torch.randn(4000, d, generator=torch.Generator().manual_seed(7), dtype=F64)
    c1 = sde.alphas_cumprod[0].item() * S2 + 1 - sde.alphas_cumprod[0].item()
    se = c1 * (2 / (n * d)) ** 0.5
    errors = {}
    for variance in ("analytic", "beta_tilde", "beta"):
        x, _ = get_sampler("ancestral", respacing="ddim25", variance=variance, data=data, denoise=False,
                           progress=False)(exact_score(sde), sde, (n, d), generator=torch.Generator().manual_seed(8),
                                           dtype=F64)
        errors[variance] = (x.pow(2).mean().item() - c1) / se
    assert abs(errors["analytic"]) < 4, errors
    assert abs(errors["beta_tilde"]) > 10 and abs(errors["beta"]) > 10, errors
