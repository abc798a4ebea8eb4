"""The low-NFE solvers against their papers' formulas and orders; time grids; per-sample seeds; time convention."""
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

import scoresde
from scoresde.parameterization import get_score_fn, time_convention
from scoresde.sampling import GRIDS, SAMPLERS, CountedScore, get_sampler
from scoresde.sampling.exponential import step_orders
from scoresde.sde import DiscreteTimeVPSDE
from problems import SDES, gaussian, ode_flow_errors

F64 = torch.float64
SDE = scoresde.VPSDE()
DATA = gaussian(dim=3)
SCORE = DATA.score_fn(SDE)
TS4 = [1.0, 0.55, 0.2, 0.03]  # a non-uniform 4-point grid
TS5 = [1.0, 0.7, 0.35, 0.12, 0.02]  # 5 points: UniC-3 needs a fourth step


# -- reference formulas, written from the papers step by step in float64 ---------------------------------
def marg(t):
    a, s = SDE.marginal_coeffs(torch.tensor([t], dtype=F64))
    return a.item(), s.item()


def lam(t):
    a, s = marg(t)
    return math.log(a / s)


def x0(x, t):
    a, s = marg(t)
    return (x + s**2 * SCORE(x, torch.full((len(x),), t, dtype=F64))) / a


def draws(seed, n):
    """The prior draw and the per-step noise, in the order the samplers take them from one generator."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(8, 3, generator=g, dtype=F64) for _ in range(n)]


def ours(name, ts, seed=0, **options):
    sampler = get_sampler(name, ts=ts, denoise=False, progress=False, lower_order_final=False, **options) \
        if name in ("dpm_solver", "unipc", "deis", "dpm_solver_sde", "ipndm") else \
        get_sampler(name, ts=ts, denoise=False, progress=False, **options)
    return sampler(SCORE, SDE, (8, 3), generator=torch.Generator().manual_seed(seed), dtype=F64)[0]


def ref_dpm_solver(ts, x, order):
    """Lu et al. 2022: order 1 and 2M (Algorithm 2) as printed; order 3 integrates σ_t ∫ e^λ P(λ) dλ exactly, with
    P the quadratic through the last three x̂_0 in λ (the Taylor expansion that 3M truncates)."""
    ms, lams = [], []
    for k in range(len(ts) - 1):
        (a_s, s_s), (a_t, s_t) = marg(ts[k]), marg(ts[k + 1])
        ms.append(x0(x, ts[k]))
        lams.append(lam(ts[k]))
        h, p = lam(ts[k + 1]) - lams[-1], min(order, k + 1)
        if p < 3:
            r = (lams[-1] - lams[-2]) / h if p == 2 else 1.0
            d = (1 + 1 / (2 * r)) * ms[-1] - 1 / (2 * r) * ms[-2] if p == 2 else ms[-1]
            x = s_t / s_s * x - a_t * math.expm1(-h) * d
            continue
        u = [lams[-1 - j] - lams[-1] for j in range(3)]
        V = torch.tensor([[uj**i for i in range(3)] for uj in u], dtype=F64)
        c = torch.linalg.solve(V, torch.stack([ms[-1 - j] for j in range(3)]).reshape(3, -1)).reshape(3, *x.shape)
        moments = [math.exp(h) - 1, (h - 1) * math.exp(h) + 1, (h * h - 2 * h + 2) * math.exp(h) - 2]  # ∫_0^h e^u u^i
        x = s_t / s_s * x + a_t * math.exp(-h) * sum(mi * ci for mi, ci in zip(moments, c))
    return x


def unipc_system(h, r, p, variant):
    """Zhao et al. 2023: B(h), ρ^P, ρ^C from R ρ = b, b_i = i! h̃ φ_{i+1}(h̃)/B(h), h̃ = −h (data prediction)."""
    x = -h
    phi = [math.exp(x)]
    for j in range(p + 1):
        phi.append((phi[-1] - 1 / math.factorial(j)) / x)
    B = x if variant == "bh1" else math.expm1(x)
    b = np.array([math.factorial(i) * x * phi[i + 1] / B for i in range(1, p + 1)])
    R = np.array([[rj**i for rj in [*r, 1.0]] for i in range(p)])
    rho_p = [] if p == 1 else [0.5] if p == 2 else np.linalg.solve(R[:-1, :-1], b[:-1])
    rho_c = [0.5] if p == 1 else np.linalg.solve(R, b)
    return B, rho_p, rho_c


def ref_unipc(ts, x, order, variant, corrector=True):
    ms, lams, pending = [], [], None
    for k in range(len(ts) - 1):
        m = x0(x, ts[k])
        if pending and corrector:  # UniC for the previous step, with the model output at the predicted point
            x_prev, base, B, a_t, rho_c, D, m0 = pending
            x = base - a_t * B * (sum(float(rc) * d for rc, d in zip(rho_c, D)) + float(rho_c[-1]) * (m - m0))
        ms.append(m)
        lams.append(lam(ts[k]))
        (a_s, s_s), (a_t, s_t) = marg(ts[k]), marg(ts[k + 1])
        h, p = lam(ts[k + 1]) - lams[-1], min(order, k + 1)
        r = [(lams[-1 - j] - lams[-1]) / h for j in range(1, p)]
        D = [(ms[-1 - j] - ms[-1]) / rj for j, rj in zip(range(1, p), r)]
        B, rho_p, rho_c = unipc_system(h, r, p, variant)
        base = s_t / s_s * x - a_t * math.expm1(-h) * ms[-1]
        pending = (x, base, B, a_t, rho_c, D, ms[-1])
        x = base - a_t * B * sum((float(rp) * d for rp, d in zip(rho_p, D)), torch.zeros_like(x))
    return x


def ref_deis(ts, x, order):
    """Zhang & Chen 2023, ρAB-DEIS: x̃ = x/α, dx̃/dρ = ε̂, ε̂ extrapolated by Lagrange polynomials in log ρ, integrated by quad."""
    eps, logrho = [], []
    for k in range(len(ts) - 1):
        (a_s, s_s), (a_t, s_t) = marg(ts[k]), marg(ts[k + 1])
        eps.append((x - a_s * x0(x, ts[k])) / s_s)
        logrho.append(math.log(s_s / a_s))
        nodes = [logrho[-1 - j] for j in range(min(order, k + 1))]
        total = torch.zeros_like(x)
        for j, vj in enumerate(nodes):
            ell = lambda rho: math.prod((math.log(rho) - vi) / (vj - vi) for i, vi in enumerate(nodes) if i != j)
            total = total + quad(ell, s_s / a_s, s_t / a_t, epsabs=1e-14, epsrel=1e-13)[0] * eps[-1 - j]
        x = a_t * (x / a_s + total)
    return x


AB = {1: [1], 2: [3 / 2, -1 / 2], 3: [23 / 12, -4 / 3, 5 / 12], 4: [55 / 24, -59 / 24, 37 / 24, -3 / 8]}


def ref_ipndm(ts, x, order, variable_step=False):
    """Zhang & Chen 2023, iPNDM: x̃ = x/α, d = (x̃ − D(x̃, σ))/σ in σ = σ_t/α_t, Adams–Bashforth on d with the
    constant-step weights; or (variable_step) the Lagrange polynomial through the last d in σ, integrated by quad."""
    ds, sig = [], []
    for k in range(len(ts) - 1):
        (a_s, s_s), (a_t, s_t) = marg(ts[k]), marg(ts[k + 1])
        xt = x / a_s
        sig.append(s_s / a_s)
        ds.append((xt - x0(x, ts[k])) / sig[-1])
        p = min(order, k + 1)
        if variable_step:
            nodes, total = sig[::-1][:p], torch.zeros_like(x)
            for j, vj in enumerate(nodes):
                ell = lambda s: math.prod((s - vi) / (vj - vi) for i, vi in enumerate(nodes) if i != j)
                total = total + quad(ell, sig[-1], s_t / a_t, epsabs=1e-14, epsrel=1e-13)[0] * ds[-1 - j]
        else:
            total = (s_t / a_t - sig[-1]) * sum(w * ds[-1 - j] for j, w in enumerate(AB[p]))
        x = a_t * (xt + total)
    return x


def t_of_sigma(sigma):
    lo, hi = TS4[-1], TS4[0]
    for _ in range(200):
        mid = (lo + hi) / 2
        a, s = marg(mid)
        lo, hi = (mid, hi) if s / a < sigma else (lo, mid)
    return (lo + hi) / 2


def ref_edm(ts, noise, S_churn=0.0, S_tmin=0.0, S_tmax=math.inf):
    """Karras et al. 2022, Algorithm 2, in σ = σ_t/α_t with D(x̃, σ) = x̂_0(α x̃, t)."""
    sig = [s / a for a, s in map(marg, ts)]
    D = lambda xt, t: x0(marg(t)[0] * xt, t)
    x = noise[0] / marg(ts[0])[0]
    for k in range(len(ts) - 1):
        gamma = min(S_churn / len(ts), 2**0.5 - 1) if S_tmin <= sig[k] <= S_tmax else 0.0
        s_hat = min(sig[k] * (1 + gamma), sig[0])
        t_hat = t_of_sigma(s_hat) if gamma > 0 else ts[k]
        x = x + math.sqrt(s_hat**2 - sig[k] ** 2) * noise[k + 1]
        d = (x - D(x, t_hat)) / s_hat
        x_next = x + (sig[k + 1] - s_hat) * d
        d2 = (x_next - D(x_next, ts[k + 1])) / sig[k + 1]
        x = x + (sig[k + 1] - s_hat) * (d + d2) / 2
    return marg(ts[-1])[0] * x


def ref_dpm_solver_sde(ts, noise):
    """SDE-DPM-Solver++(2M) (Lu et al. 2022)."""
    x, ms, lams = noise[0], [], []
    for k in range(len(ts) - 1):
        (a_s, s_s), (a_t, s_t) = marg(ts[k]), marg(ts[k + 1])
        ms.append(x0(x, ts[k]))
        lams.append(lam(ts[k]))
        h = lam(ts[k + 1]) - lams[-1]
        d = ms[-1] + (ms[-1] - ms[-2]) / (2 * (lams[-1] - lams[-2]) / h) if k > 0 else ms[-1]
        x = s_t / s_s * math.exp(-h) * x + a_t * -math.expm1(-2 * h) * d + s_t * math.sqrt(-math.expm1(-2 * h)) * noise[k + 1]
    return x


@pytest.mark.parametrize("order", [1, 2, 3])
def test_dpm_solver_matches_reference(order):
    torch.testing.assert_close(ours("dpm_solver", TS4, order=order), ref_dpm_solver(TS4, draws(0, 1)[0], order), rtol=0, atol=1e-12)


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("order, corrector", [(1, True), (2, True), (3, True), (3, False)])
def test_unipc_matches_reference(order, corrector, variant):
    x = ours("unipc", TS5, order=order, variant=variant, corrector=corrector)
    torch.testing.assert_close(x, ref_unipc(TS5, draws(0, 1)[0], order, variant, corrector), rtol=0, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_deis_matches_reference(order):
    torch.testing.assert_close(ours("deis", TS4, order=order), ref_deis(TS4, draws(0, 1)[0], order), rtol=0, atol=1e-12)


TS6 = [1.0, 0.8, 0.5, 0.3, 0.12, 0.02]  # 6 points: iPNDM's fourth order acts on the last step


@pytest.mark.parametrize("variable_step", [False, True])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_ipndm_matches_reference(order, variable_step):
    x = ours("ipndm", TS6, order=order, variable_step=variable_step)
    torch.testing.assert_close(x, ref_ipndm(TS6, draws(0, 1)[0], order, variable_step), rtol=0, atol=1e-12)


@pytest.mark.parametrize("churn", [{}, {"S_churn": 2.0, "S_tmax": 50.0}])
def test_edm_heun_matches_algorithm_2(churn):
    x = ours("edm", TS4, seed=3, **churn)
    torch.testing.assert_close(x, ref_edm(TS4, draws(3, len(TS4)), **churn), rtol=0, atol=1e-12)


def test_dpm_solver_sde_matches_reference():
    x = ours("dpm_solver_sde", TS4, seed=5)
    torch.testing.assert_close(x, ref_dpm_solver_sde(TS4, draws(5, len(TS4))), rtol=0, atol=1e-12)


def test_lower_order_final():
    """Short grids drop to order 1, 2 at the end; the final Tweedie step counts as the last first-order step."""
    assert step_orders(3, 6, True, denoise=True) == [1, 2, 3, 3, 3, 2]  # then Tweedie's step, order 1
    assert step_orders(3, 6, True, denoise=False) == [1, 2, 3, 3, 2, 1]
    assert step_orders(3, 6, False, denoise=True) == [1, 2, 3, 3, 3, 3]
    assert step_orders(3, 20, True, denoise=True) == [1, 2] + [3] * 18  # 15 steps or more: no lowering


# -- convergence orders against the exact probability-flow map -------------------------------------------
@pytest.mark.parametrize("sde_name", ["vp", "ve"])
@pytest.mark.parametrize("name, options, order", [
    ("unipc", {"order": 1}, 2.0), ("unipc", {"order": 2}, 3.0), ("unipc", {"order": 3}, 4.0),
    ("unipc", {"order": 2, "corrector": False}, 2.0), ("dpm_solver", {"order": 3}, 3.0), ("edm", {}, 2.0),
])
def test_convergence_order(name, options, order, sde_name):
    """On the Karras grid (non-uniform in t and in λ): measured order within ±0.25 (33 → 65 → 129 steps)."""
    errors, orders = ode_flow_errors(name, SDES[sde_name](), [33, 65, 129], grid="karras", **options)
    assert all(abs(o - order) < 0.25 for o in orders), (errors, orders)


@pytest.mark.parametrize("options, order", [({"order": 1}, 1.0), ({"order": 2}, 2.0), ({"order": 4}, 2.0),
                                            ({"order": 3, "variable_step": True}, 3.0),
                                            ({"order": 4, "variable_step": True}, 4.0)])
def test_ipndm_order(options, order):
    """iPNDM's constant-step weights on the non-uniform Karras grid cap its order at 2 whatever the order
    asked (measured: 2.01 at order 4, 129 → 257 steps); exact weights (variable_step) reach it (3.85 at 4).
    Within ±0.25 from 129 → 257 → 513 steps, where the variable-step orders are out of their warm-up."""
    errors, orders = ode_flow_errors("ipndm", SDES["vp"](), [129, 257, 513], grid="karras", **options)
    assert all(abs(o - order) < 0.25 for o in orders), (errors, orders)


# -- time grids ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sde_name", ["vp", "ve"])
@pytest.mark.parametrize("grid", list(GRIDS))
def test_grids_run_from_T_to_eps(grid, sde_name):
    sde = SDES[sde_name]()
    ts = get_sampler("ddim", steps=12, grid=grid).time_grid(sde)
    assert len(ts) == 12 and ts[0] == sde.T and ts[-1] == sde.sampling_eps and bool((ts.diff() < 0).all())


def test_grids_follow_their_formulas():
    sde, K = scoresde.VPSDE(), 9
    lam_of = lambda ts: (lambda a, s: (a / s).log())(*sde.marginal_coeffs(ts))
    lam = lam_of(get_sampler("ddim", steps=K, grid="logsnr").time_grid(sde))
    assert torch.allclose(lam.diff(), lam.diff()[0].expand(K - 1), rtol=1e-10)
    sigma = (-lam_of(get_sampler("ddim", steps=K, grid="karras", rho=5.0).time_grid(sde))).exp()
    ramp = torch.linspace(0, 1, K, dtype=F64)
    expected = (sigma[0] ** (1 / 5) + ramp * (sigma[-1] ** (1 / 5) - sigma[0] ** (1 / 5))) ** 5
    assert torch.allclose(sigma, expected, rtol=1e-10)
    ts = get_sampler("ddim", steps=K, grid="quadratic").time_grid(sde)
    assert torch.allclose(ts, 1e-3 + (1 - 1e-3) * torch.linspace(1, 0, K, dtype=F64) ** 2, rtol=1e-12)


def test_default_grids():
    """The measured defaults documented in the README."""
    defaults = {name: get_sampler(name).grid for name in SAMPLERS}
    assert defaults == {"ancestral": "uniform", "reverse_diffusion": "uniform", "euler_maruyama": "uniform",
                        "pc": "uniform", "ode": "uniform", "ddim": "uniform", "dpm_solver": "logsnr",
                        "dpm_solver_sde": "quadratic", "unipc": "logsnr", "deis": "karras", "ipndm": "quadratic",
                        "edm": "karras", "torchsde": "uniform"}  # at the default 1000 steps (budget.RULES' last rows)


def test_bad_grid_and_solver_options():
    with pytest.raises(ValueError, match=r"grid must be one of \['karras', 'logsnr', 'optimized', 'quadratic', 'uniform'\], got 'cosine'"):
        get_sampler("unipc", grid="cosine")
    with pytest.raises(ValueError, match=r"order must be one of \[1, 2, 3\], got 4"):
        get_sampler("dpm_solver", order=4)
    with pytest.raises(ValueError, match=r"order must be one of \[1, 2\], got 3"):
        get_sampler("dpm_solver_sde", order=3)
    with pytest.raises(ValueError, match=r"variant must be one of \['bh1', 'bh2'\]"):
        get_sampler("unipc", variant="bh3")
    with pytest.raises(ValueError, match="S_churn must be >= 0"):
        get_sampler("edm", S_churn=-1)
    with pytest.raises(ValueError, match="rho must be > 0"):
        get_sampler("edm", rho=0)
    with pytest.raises(ValueError, match="the torchsde sampler needs a uniform grid"):
        get_sampler("torchsde", grid="karras")


def test_multistep_history_is_local_to_one_call():
    """A sampler object re-entered from its own callback gives both calls the results of separate runs."""
    sampler = get_sampler("unipc", order=3, steps=12, progress=False)
    alone = sampler(SCORE, SDE, (8, 3), generator=torch.Generator().manual_seed(1), dtype=F64)[0]
    nested = []

    def callback(x, t, k):
        if k == 3 and not nested:
            nested.append(None)
            nested[0] = sampler(SCORE, SDE, (8, 3), generator=torch.Generator().manual_seed(1), dtype=F64)[0]

    sampler.callback = callback
    outer = sampler(SCORE, SDE, (8, 3), generator=torch.Generator().manual_seed(1), dtype=F64)[0]
    assert torch.equal(outer, alone) and torch.equal(nested[0], alone)


# -- per-sample seeds ------------------------------------------------------------------------------------
STOCHASTIC = {
    "ancestral": dict(steps=6), "ddim_eta1": dict(steps=6, eta=1.0), "reverse_diffusion": dict(steps=6),
    "euler_maruyama": dict(steps=6), "pc": dict(steps=4, norm="sample"), "pc_annealed": dict(steps=4, corrector="annealed_langevin"),
    "torchsde_euler": dict(steps=4), "torchsde_srk": dict(steps=3), "dpm_solver_sde": dict(steps=6), "edm_churn": dict(steps=4, S_churn=5),
}


@pytest.mark.parametrize("case", list(STOCHASTIC))
def test_per_sample_seeds_do_not_depend_on_the_batch(case):
    """8 samples in one batch equal two batches of 4 with the same seeds."""
    name = {"ddim_eta1": "ddim", "pc_annealed": "pc", "torchsde_euler": "torchsde:euler", "torchsde_srk": "torchsde:srk",
            "edm_churn": "edm"}.get(case, case)
    sampler = get_sampler(name, progress=False, **STOCHASTIC[case])
    run = lambda seeds: sampler(SCORE, SDE, (len(seeds), 3), seeds=seeds, dtype=F64)[0]
    seeds = [11, 3, 7, 0, 5, 2, 13, 1]
    together, apart = run(seeds), torch.cat([run(seeds[:4]), run(seeds[4:])])
    assert torch.allclose(together, apart, rtol=0, atol=1e-12), (together - apart).abs().max()
    assert torch.allclose(run(seeds[::-1]), together.flip(0), rtol=0, atol=1e-12)  # a sample follows its seed
    assert not torch.allclose(together[0], together[1])


def test_seed_arguments_are_checked():
    sampler = get_sampler("ancestral", steps=3, progress=False)
    with pytest.raises(ValueError, match="give either generator or seeds"):
        sampler(SCORE, SDE, (2, 3), generator=torch.Generator(), seeds=[0, 1])
    with pytest.raises(ValueError, match="3 seeds for a batch of 2"):
        sampler(SCORE, SDE, (2, 3), seeds=[0, 1, 2])
    with pytest.raises(ValueError, match="seeds must be a non-empty sequence of non-negative integers"):
        sampler(SCORE, SDE, (2, 3), seeds=[0, -1])
    with pytest.raises(ValueError, match="with per-sample seeds use norm='sample'"):
        get_sampler("pc", steps=3, progress=False)(SCORE, SDE, (2, 3), seeds=[0, 1])


# -- the time convention ---------------------------------------------------------------------------------
ZERO = lambda x, t: torch.zeros_like(x)  # score 0: every deterministic sampler here returns x_T / α_T


def _zero_run(name, score, steps):
    sampler = get_sampler(name, steps=steps, progress=False)
    return sampler(score, SDE, (4, 2), generator=torch.Generator().manual_seed(0), dtype=F64)[0], torch.randn(
        4, 2, generator=torch.Generator().manual_seed(0), dtype=F64)


@pytest.mark.parametrize("name", ["ddim", "dpm_solver", "unipc", "deis", "edm"])
def test_continuous_score_never_sees_discrete_alphas(name):
    """steps = 10 lands on DDPM's steps t_i = iT/N, yet a continuous model gets α(t) there and in the final step."""
    alpha_T = SDE.marginal_coeffs(torch.tensor([1.0], dtype=F64))[0]
    for score in (ZERO, get_score_fn(lambda x, t: torch.zeros_like(x), SDE, "eps")):
        x, x_T = _zero_run(name, score, 10)
        assert torch.allclose(x, x_T / alpha_T, rtol=1e-12)
    assert abs(alpha_T.item() / SDE.alphas_cumprod[-1].sqrt().item() - 1) > 0.02  # the two would differ by 3%


@pytest.mark.parametrize("name", ["ddim", "dpm_solver", "unipc", "ancestral"])
@pytest.mark.parametrize("steps", [1000, 10, 7])
def test_discrete_score_gets_ddpm_alphas_on_ddpm_steps(name, steps):
    """A discrete model sees DDPM's ᾱ_i only, at DDPM steps only: off the lattice the grid snaps to the nearest
    steps (respacing), so the first step is ᾱ_N and the model is called at t_i = iT/N. (On other grids the
    snapped steps may repeat near eps; repeats are dropped, so fewer NFE are spent than asked.)"""
    seen = []
    model = lambda x, i: seen.append(i) or torch.zeros_like(x)
    score = get_score_fn(model, SDE, "eps", continuous=False)
    sampler = get_sampler(name, steps=steps, grid="uniform", eps=SDE.sampling_eps, progress=False)  # not the rule's
    x, nfe = sampler(score, SDE, (4, 2), generator=torch.Generator().manual_seed(0), dtype=F64)
    x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    if name != "ancestral":
        assert torch.allclose(x, x_T / SDE.alphas_cumprod[-1].sqrt(), rtol=1e-12)
    assert nfe == steps and seen[0][0] == SDE.N - 1 and seen[-1][0] == 0


def test_time_convention_is_declared_and_kept():
    assert time_convention(lambda x, t: x) == "continuous"
    discrete = get_score_fn(lambda x, i: x, SDE, "eps", continuous=False)
    assert time_convention(discrete) == "discrete" and time_convention(CountedScore(discrete).score) == "discrete"
    with pytest.raises(ValueError, match="continuous must be True or False, got 'yes'"):
        scoresde.Score(lambda x, t: x, continuous="yes")
    stale = lambda x, t: x
    stale.continuous = False  # the old way to declare it: refused by name, never silently read as continuous
    with pytest.raises(TypeError, match=r"declares continuous as function attributes.*Score\(score_fn, continuous=False\)"):
        time_convention(stale)
    discrete_ve = scoresde.Score(lambda x, t: -x, continuous=False)
    with pytest.raises(ValueError, match="a discrete-time score needs an SDE with DDPM's discrete betas"):
        get_sampler("ddim", steps=3, progress=False)(discrete_ve, scoresde.VESDE(), (2, 2))
    with pytest.raises(ValueError, match=r"a discrete-time model is defined only at DDPM steps t_i = i\*T/N"):
        DiscreteTimeVPSDE(SDE).marginal_coeffs(torch.tensor([0.5005], dtype=F64))
