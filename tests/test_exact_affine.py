"""Every fixed-step sampler against exact answers on Gaussian data, where the score is affine.

For data N(μ, Σ) under a linear SDE, s(x, t) = −C_t⁻¹ (x − α_t μ) with C_t = α_t² Σ + σ_t² I, so each
sampler move x' = A x + B s(x, t) + c z is affine in x and in the noise z. The reference below is written
from the papers' formulas, with α_t, σ_t, f(t), g(t)² from their closed forms (nothing from scoresde).
Three kinds of check, all in float64:
- path-wise: the sampler and the reference draw the same noise from identically seeded generators, and
  must end at the same points (relative 1e-10), on a non-uniform user grid (so DPM-Solver's r ≠ 1);
- exact moments: unit impulses replace the prior draw and every noise draw, so the sampler's own output
  rows give its exact mean and covariance, with no Monte Carlo. They must equal the reference's
  propagation m' = M m + b, P' = M P Mᵀ + c² I, and, for one ancestral or DDIM move from the exact
  marginal p_t, the closed form C_s − κ² Cov(x_0 | x_t) (+ (β − β̃) I for the β variance);
- the Langevin step-size rules and the log-SNR grid, against their formulas on fixed numbers.
The adaptive ODE sampler is checked against the exact probability-flow map of Gaussian data instead.
"""
import math

import pytest
import torch

import scoresde
import scoresde._utils
import scoresde.sde
from scoresde.sampling import get_sampler
from scoresde.sampling.dpm_solver import DPMSolverSampler
from scoresde.sampling.pc import annealed_langevin_step_size, langevin_step_size
from problems import SDES, gaussian, gaussian_flow

F64 = torch.float64
DIM, BATCH = 3, 4
# Non-uniform and off the DDPM lattice (0.7311 is no multiple of 1/N).
# The last time lies below T/N = 1e-3, where the Langevin step's α looks back to time 0.
TS = [1.0, 0.7311, 0.5102, 0.3333, 0.1919, 0.0877, 0.0301, 0.0063, 6e-4]
RTOL = 1e-10


# -- closed-form α_t, σ_t, f(t), g(t)² (Song et al. 2021, Eqs. 29–34; Nichol & Dhariwal 2021, Eq. 17) ---------------
class Reference:
    """α_t, σ_t, f(t), g(t)² and the prior std of one SDE of the zoo, from the closed forms."""

    def __init__(self, name):
        self.name = name
        self.prior_std = math.sqrt(50.0**2 - 0.01**2) if name == "ve" else 1.0
        self.sampling_eps = 1e-5 if name == "ve" else 1e-3  # the documented default end of the grid
        s, clip = 0.008, -1000 * math.log(1 - 0.999)  # cosine offset; β clip −N log(1 − max_beta)
        self._cos = lambda t: math.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        self._cos_beta = lambda t: math.pi / (1 + s) * math.tan((t + s) / (1 + s) * math.pi / 2)
        self._t_clip = 2 * (1 + s) / math.pi * math.atan(clip * (1 + s) / math.pi) - s  # β(t_clip) = clip
        self._clip = clip

    def _integral_beta(self, t):
        """∫₀ᵗ β and β(t) of the VP / sub-VP schedule."""
        if self.name == "vp_cosine":
            tc = min(t, self._t_clip)
            head = -math.log(self._cos(tc) / self._cos(0.0))
            return head + self._clip * (t - tc), (self._cos_beta(t) if t < self._t_clip else self._clip)
        return 0.1 * t + 0.5 * t**2 * 19.9, 0.1 + 19.9 * t

    def marginals(self, t):
        """α_t, σ_t of x_t | x_0 ~ N(α_t x_0, σ_t² I)."""
        if t == 0:
            return 1.0, 0.0
        if self.name == "ve":  # σ_t² = σ(t)² − σ_min², σ(t) = σ_min (σ_max/σ_min)^t
            return 1.0, 0.01 * math.sqrt(math.expm1(2 * t * math.log(5000.0)))
        integral, _ = self._integral_beta(t)
        alpha = math.exp(-0.5 * integral)
        return alpha, (-math.expm1(-integral) if self.name == "subvp" else math.sqrt(-math.expm1(-integral)))

    def drift_diffusion(self, t):
        """f(t) and g(t)² of dx = f x dt + g dw."""
        if self.name == "ve":
            return 0.0, (0.01 * 5000.0**t) ** 2 * 2 * math.log(5000.0)
        integral, beta = self._integral_beta(t)
        return -0.5 * beta, beta * (-math.expm1(-2 * integral) if self.name == "subvp" else 1.0)


def ddpm_lattice_marginals(t):
    """α_t = √ᾱ_i, σ_t = √(1 − ᾱ_i) of DDPM step i = tN (Ho et al. 2020: β_i = linspace(1e-4, 0.02, 1000))."""
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=F64), 0)[round(t * 1000) - 1].item()
    return math.sqrt(abar), math.sqrt(1 - abar)


class AffineScore:
    """The exact score −C_t⁻¹ (x − α_t μ) of Gaussian data, with α_t, σ_t from `marginals`."""

    def __init__(self, data, marginals):
        self.mu, self.cov, self.marginals = data.means[0], data.covs[0], marginals

    def precision(self, t):
        alpha, sigma = self.marginals(t)
        return torch.linalg.inv(alpha**2 * self.cov + sigma**2 * torch.eye(len(self.mu), dtype=F64))

    def __call__(self, x, t):
        t = float(t[0]) if torch.is_tensor(t) and t.ndim else float(t)
        return -(x - self.marginals(t)[0] * self.mu) @ self.precision(t)


# -- the papers' moves, each x' = move(x, s, z) with s = s(x, t) ------------------------------------------------------
def ancestral_move(m, t, s, variance):
    """Posterior q(x_s | x_t, x̂_0) of Ho et al. 2020, Eqs. 6–7, with σ² = β̃ or β = σ_t² − a² σ_s²."""
    (at, st), (as_, ss) = m(t), m(s)
    a = at / as_
    beta = st**2 - a**2 * ss**2
    var = beta * ss**2 / st**2 if variance == "beta_tilde" else beta

    def move(x, score, z):
        x0 = (x + st**2 * score) / at  # Tweedie
        return as_ * beta / st**2 * x0 + a * ss**2 / st**2 * x + math.sqrt(var) * z
    return move


def ddim_move(m, t, s, eta):
    """Song, Meng & Ermon 2021, Eq. 12: x_s = α_s x̂_0 + √(σ_s² − c²) ε̂ + c z, c = η √β̃."""
    (at, st), (as_, ss) = m(t), m(s)
    c = eta * math.sqrt(ss**2 / st**2 * (st**2 - (at / as_) ** 2 * ss**2))

    def move(x, score, z):
        eps = -st * score
        return as_ * (x - st * eps) / at + math.sqrt(ss**2 - c**2) * eps + c * z
    return move


def reverse_diffusion_move(m, t, s):
    """Song et al. 2021, Eq. 46: x_s = x_t − f + G² s + G z with the exact forward step x_t = a x_s + G z."""
    (at, st), (as_, ss) = m(t), m(s)
    a = at / as_
    G2 = st**2 - a**2 * ss**2
    return lambda x, score, z: x - (a - 1) * x + G2 * score + math.sqrt(G2) * z


def euler_maruyama_move(ref, t, s):
    """dx = [f x − g² s] dt + g dw̄ over dt = s − t < 0."""
    f, g2 = ref.drift_diffusion(t)
    return lambda x, score, z: x + (f * x - g2 * score) * (s - t) + math.sqrt(g2 * (t - s)) * z


def ode_euler_move(ref, t, s):
    f, g2 = ref.drift_diffusion(t)
    return lambda x, score, z: x + (f * x - 0.5 * g2 * score) * (s - t)


def annealed_langevin_move(ref, t, snr):
    """x + ε s + √(2ε) z, ε = 2 α (r σ_t)², α = (α_t/α_{t−T/N})² (Song et al. 2021, Algorithm 5; score_sde)."""
    alpha = (ref.marginals(t)[0] / ref.marginals(max(t - 1e-3, 0.0))[0]) ** 2
    eps = 2 * alpha * (snr * ref.marginals(t)[1]) ** 2
    return lambda x, score, z: x + eps * score + math.sqrt(2 * eps) * z


def tweedie_move(m, t):
    alpha, sigma = m(t)
    return lambda x, score, z: (x + sigma**2 * score) / alpha


# -- cases: sampler options and the reference plan --------------------------------------------------------------------
# predictor -> its move from t to s, built from (reference, marginals m, t, s)
PREDICTORS = {
    "ancestral": lambda ref, m, t, s: ancestral_move(m, t, s, "beta_tilde"),
    "ancestral_beta": lambda ref, m, t, s: ancestral_move(m, t, s, "beta"),
    "ddim": lambda ref, m, t, s: ddim_move(m, t, s, 0.0),
    "ddim_eta0.3": lambda ref, m, t, s: ddim_move(m, t, s, 0.3),
    "ddim_eta1": lambda ref, m, t, s: ddim_move(m, t, s, 1.0),
    "reverse_diffusion": lambda ref, m, t, s: reverse_diffusion_move(m, t, s),
    "euler_maruyama": lambda ref, m, t, s: euler_maruyama_move(ref, t, s),
    "ode_euler": lambda ref, m, t, s: ode_euler_move(ref, t, s),
    "dpm_solver_1": lambda ref, m, t, s: ddim_move(m, t, s, 0.0),  # DPM-Solver++(1) is DDIM (Lu et al. 2022)
}
AFFINE = {  # case -> (sampler, options, predictor, predictor draws noise, (n_corrector_steps, snr) or None)
    "ancestral": ("ancestral", {}, "ancestral", True, None),
    "ancestral_beta": ("ancestral", {"variance": "beta"}, "ancestral_beta", True, None),
    "ddim": ("ddim", {}, "ddim", False, None),
    "ddim_eta0.3": ("ddim", {"eta": 0.3}, "ddim_eta0.3", True, None),
    "ddim_eta1": ("ddim", {"eta": 1.0}, "ddim_eta1", True, None),
    "reverse_diffusion": ("reverse_diffusion", {}, "reverse_diffusion", True, None),
    "euler_maruyama": ("euler_maruyama", {}, "euler_maruyama", True, None),
    "ode_euler": ("ode", {"method": "euler"}, "ode_euler", False, None),
    "dpm_solver_1": ("dpm_solver", {"order": 1}, "dpm_solver_1", False, None),
    "pc_annealed": ("pc", {"corrector": "annealed_langevin", "snr": 0.12}, "reverse_diffusion", True, (1, 0.12)),
    "pc_annealed_em_2": ("pc", {"predictor": "euler_maruyama", "corrector": "annealed_langevin", "snr": 0.07,
                                "n_corrector_steps": 2}, "euler_maruyama", True, (2, 0.07)),
    "pc_annealed_ancestral": ("pc", {"predictor": "ancestral", "corrector": "annealed_langevin", "snr": 0.1},
                              "ancestral", True, (1, 0.1)),
    "pc_no_corrector": ("pc", {"n_corrector_steps": 0}, "reverse_diffusion", True, None),
    "pc_corrector_only": ("pc", {"predictor": "none", "corrector": "annealed_langevin", "snr": 0.05,
                                 "n_corrector_steps": 2}, None, False, (2, 0.05)),
}


def affine_plan(case, ref, ts, m=None, denoise=True):
    """The reference's moves in the sampler's order: [(t, move, draws noise)], ending with Tweedie at ts[-1]."""
    m = m or ref.marginals
    _, _, predictor, noisy, corrector = AFFINE[case]
    plan = []
    for k, t in enumerate(ts):
        if corrector is not None:
            plan += [(t, annealed_langevin_move(ref, t, corrector[1]), True)] * corrector[0]
        if k + 1 < len(ts) and predictor is not None:
            plan.append((t, PREDICTORS[predictor](ref, m, t, ts[k + 1]), noisy))
    return plan + ([(ts[-1], tweedie_move(m, ts[-1]), False)] if denoise else [])


def run_plan(plan, x, score, draw):
    for t, move, noisy in plan:
        x = move(x, score(x, t), draw() if noisy else 0.0)
    return x


def sampler_for(case, **extra):
    name, options, *_ = AFFINE[case]
    return get_sampler(name, progress=False, **{**options, **extra})


def seeded_draws(ref, seed):
    """The draws a sampler makes from torch.Generator().manual_seed(seed): x_T first, then one per noisy move."""
    g = torch.Generator().manual_seed(seed)
    draw = lambda: torch.randn(BATCH, DIM, generator=g, dtype=F64)
    draw.generator = g
    return ref.prior_std * draw(), draw


def assert_close(x, expected, rtol=RTOL):
    scale = expected.abs().max().item() + 1.0
    err = (x - expected).abs().max().item()
    assert err <= rtol * scale, f"max error {err:.3e} > {rtol:.0e} × {scale:.3g}"


def sample(sampler, score, sde, seed=0, generator=None):
    return sampler(score, sde, (BATCH, DIM), generator=generator or torch.Generator().manual_seed(seed), dtype=F64)


# -- path-wise -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("case", list(AFFINE))
def test_affine_samplers_follow_the_reference_path(case, sde_name):
    """Same seed, same noise: the sampler's samples equal the papers' recursion to 1e-10 (relative), NFE counted.
    The sampler draws exactly the reference's noise (the generators end in the same state), and it declares
    itself `stochastic` exactly when it draws noise after x_T."""
    ref, sde = Reference(sde_name), SDES[sde_name]()
    score = AffineScore(gaussian(dim=DIM, seed=1), ref.marginals)
    sampler, g = sampler_for(case, ts=TS), torch.Generator().manual_seed(0)
    x, nfe = sample(sampler, score, sde, generator=g)
    plan = affine_plan(case, ref, TS)
    x_T, draw = seeded_draws(ref, 0)
    assert_close(x, run_plan(plan, x_T, score, draw))
    assert nfe == len(plan)
    assert torch.equal(g.get_state(), draw.generator.get_state())
    assert sampler.stochastic == any(noisy for _, _, noisy in plan)


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("case", ["ancestral", "ddim_eta0.3", "dpm_solver_1", "euler_maruyama", "pc_annealed"])
@pytest.mark.parametrize("denoise", [True, False])
def test_default_uniform_grid(case, denoise, sde_name):
    """steps=6 without ts: the grid is linspace(T, sampling_eps, 6); denoise=False ends at ts[-1] without Tweedie.

    On VPSDE only the last time 1e-3 of this grid is a DDPM step, so every move and the final Tweedie step use
    the continuous ᾱ(t) (the whole grid decides, not its last point).
    """
    ref, sde = Reference(sde_name), SDES[sde_name]()
    ts = torch.linspace(1.0, ref.sampling_eps, 6, dtype=F64).tolist()
    score = AffineScore(gaussian(dim=DIM, seed=2), ref.marginals)
    extra = {"grid": "uniform", "eps": ref.sampling_eps} if case.startswith("dpm") else {}  # not the budget rule's
    x, nfe = sample(sampler_for(case, steps=6, denoise=denoise, **extra), score, sde, seed=5)
    plan = affine_plan(case, ref, ts, denoise=denoise)
    x_T, draw = seeded_draws(ref, 5)
    assert_close(x, run_plan(plan, x_T, score, draw))
    assert nfe == len(plan)


@pytest.mark.parametrize("case", list(AFFINE))
@pytest.mark.parametrize("steps", [1, 2])
def test_one_and_two_grid_times(case, steps):
    """steps=1 is the grid [T]: no move, PC's last corrector, Tweedie at T; steps=2 is one move from T to eps (VE)."""
    ref, sde = Reference("ve"), SDES["ve"]()
    ts = [1.0, ref.sampling_eps][:steps]
    score = AffineScore(gaussian(dim=DIM, seed=7), ref.marginals)
    extra = {"eps": ref.sampling_eps} if case.startswith("dpm") else {}  # not the budget rule's
    x, nfe = sample(sampler_for(case, steps=steps, **extra), score, sde, seed=8)
    plan = affine_plan(case, ref, ts)
    x_T, draw = seeded_draws(ref, 8)
    assert_close(x, run_plan(plan, x_T, score, draw))
    assert nfe == len(plan)


@pytest.mark.parametrize("case", ["euler_maruyama", "pc_annealed"])
def test_explicit_eps_and_one_time_user_grid(case):
    """steps=5 with eps=2e-3 gives linspace(T, 2e-3, 5); the user grid [0.7] gives no move, then (PC's corrector and)
    Tweedie at 0.7."""
    ref, sde = Reference("subvp"), SDES["subvp"]()
    score = AffineScore(gaussian(dim=DIM, seed=9), ref.marginals)
    for options, ts in (({"steps": 5, "eps": 2e-3}, torch.linspace(1.0, 2e-3, 5, dtype=F64).tolist()), ({"ts": [0.7]}, [0.7])):
        x, nfe = sample(sampler_for(case, **options), score, sde, seed=10)
        plan = affine_plan(case, ref, ts)
        x_T, draw = seeded_draws(ref, 10)
        assert_close(x, run_plan(plan, x_T, score, draw))
        assert nfe == len(plan)


@pytest.mark.parametrize("options, shape", [
    (dict(ts=[1.0, 0.5], eps=1e-3), (2, 2)), (dict(eps=0.0), (2, 2)), (dict(ts=[1.5, 0.5]), (2, 2)),
    (dict(ts=[0.5, 0.0]), (2, 2)), (dict(ts=[]), (2, 2)), (dict(ts=[1.0, 0.5, 0.5]), (2, 2)), (dict(eps=1.0), (2, 2)),
    (dict(), (2, 0)),
])
def test_grid_and_shape_ends_are_rejected(options, shape):
    """eps and ts exclude each other; 0 < eps < T; ts in (0, T] at both ends, strictly decreasing and not empty;
    every dimension ≥ 1."""
    with pytest.raises(ValueError):
        get_sampler("euler_maruyama", steps=3, progress=False, **options)(lambda x, t: -x, scoresde.VPSDE(), shape)


@pytest.mark.parametrize("case", ["ancestral", "ddim_eta0.3", "pc_annealed", "dpm_solver_1"])
def test_float32_runs_in_float32(case):
    """dtype=float32: the float64 coefficient tables are cast once, so the samples stay float32 and agree with the
    float64 reference to float32 precision (1e-4 relative)."""
    ref, sde = Reference("vp"), SDES["vp"]()
    score64 = AffineScore(gaussian(dim=DIM, seed=11), ref.marginals)
    score = lambda x, t: score64(x.double(), t).to(x.dtype)
    x, _ = sampler_for(case, ts=TS)(score, sde, (BATCH, DIM), generator=torch.Generator().manual_seed(12), dtype=torch.float32)
    g = torch.Generator().manual_seed(12)
    draw = lambda: torch.randn(BATCH, DIM, generator=g, dtype=torch.float32).double()
    assert x.dtype == torch.float32
    assert_close(x.double(), run_plan(affine_plan(case, ref, TS), draw(), score64, draw), rtol=1e-4)


@pytest.mark.parametrize("case, continuous", [("ancestral", False), ("ancestral_beta", False), ("ddim_eta0.3", False),
                                              ("ddim", True), ("dpm_solver_1", False)])
def test_ddpm_lattice_uses_discrete_alphas(case, continuous):
    """steps=10 from 1 to 1e-3 lies on DDPM's steps t_i = i/N: for a score declared discrete-time the moves (and
    Tweedie) use DDPM's ᾱ_i; a continuous-time score keeps the continuous ᾱ(t) on the same grid."""
    ref, sde = Reference("vp"), scoresde.VPSDE()
    ts = torch.linspace(1.0, 1e-3, 10, dtype=F64).tolist()
    m = ref.marginals if continuous else ddpm_lattice_marginals
    assert abs(ddpm_lattice_marginals(0.445)[0] - ref.marginals(0.445)[0]) > 1e-4  # the two schedules differ visibly
    score = scoresde.Score(AffineScore(gaussian(dim=DIM, seed=3), ref.marginals),
                           continuous=continuous)  # the model's time convention, declared on the score
    extra = {"grid": "uniform", "eps": 1e-3} if case.startswith("dpm") else {}  # not the budget rule's
    x, _ = sample(sampler_for(case, steps=10, **extra), score, sde, seed=2)
    x_T, draw = seeded_draws(ref, 2)
    assert_close(x, run_plan(affine_plan(case, ref, ts, m=m), x_T, score, draw))


def _heun(ref, score, ts, x):
    """Heun's method on the probability-flow ODE dx/dt = f x − ½ g² s (Karras et al. 2022, Algorithm 1)."""
    def d(x, t):
        f, g2 = ref.drift_diffusion(t)
        return f * x - 0.5 * g2 * score(x, t)

    for t, s in zip(ts[:-1], ts[1:]):
        x_euler = x + (s - t) * d(x, t)
        x = x + (s - t) * 0.5 * (d(x, t) + d(x_euler, s))
    return x


def _dpm_solver_2m(ref, score, ts, x):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): D = (1 + 1/(2r)) x̂_0,k − 1/(2r) x̂_0,k−1, r = h_{k−1}/h_k."""
    lam = lambda t: math.log(ref.marginals(t)[0] / ref.marginals(t)[1])
    x0_prev, h_prev = None, None
    for t, s in zip(ts[:-1], ts[1:]):
        (at, st), (as_, ss) = ref.marginals(t), ref.marginals(s)
        h = lam(s) - lam(t)
        x0 = (x + st**2 * score(x, t)) / at
        D = x0 if x0_prev is None else (1 + h / (2 * h_prev)) * x0 - h / (2 * h_prev) * x0_prev
        x = ss / st * x - as_ * math.expm1(-h) * D
        x0_prev, h_prev = x0, h
    return x


def _pc_langevin(ref, score, ts, x, draw, n, snr):
    """Reverse diffusion + Langevin with ε = 2 α (r ‖z‖/‖s‖)², norms averaged over the batch (Algorithm 5)."""
    def correct(x, t):
        alpha = (ref.marginals(t)[0] / ref.marginals(max(t - 1e-3, 0.0))[0]) ** 2
        for _ in range(n):
            s, z = score(x, t), draw()
            eps = 2 * alpha * (snr * z.norm(dim=1).mean() / s.norm(dim=1).mean()) ** 2
            x = x + eps * s + (2 * eps).sqrt() * z
        return x

    for t, s in zip(ts[:-1], ts[1:]):
        x = correct(x, t)
        x = reverse_diffusion_move(ref.marginals, t, s)(x, score(x, t), draw())
    return correct(x, ts[-1])


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("case", ["ode_heun", "dpm_solver_2m", "dpm_solver_2m_logsnr", "pc_langevin", "pc_langevin_2"])
def test_multistep_and_nonlinear_samplers_follow_the_reference_path(case, sde_name):
    """Heun, DPM-Solver++(2M) on the non-uniform grid (r ≠ 1) and on its log-SNR grid, and PC with the
    norm-based Langevin step: the papers' recursions, same noise, to 1e-10 (relative)."""
    ref, sde = Reference(sde_name), SDES[sde_name]()
    score = AffineScore(gaussian(dim=DIM, seed=4), ref.marginals)
    x_T, draw = seeded_draws(ref, 3)
    ts = TS
    if case == "ode_heun":
        x, nfe = sample(get_sampler("ode:heun", ts=TS, progress=False), score, sde, seed=3)
        expected, expected_nfe = _heun(ref, score, ts, x_T), 2 * (len(ts) - 1) + 1
    elif case.startswith("dpm"):
        sampler = get_sampler("dpm_solver", order=2, steps=9, progress=False, **({} if "logsnr" in case else {"ts": TS}))
        ts = sampler.time_grid(sde).tolist()  # checked against its definition in test_dpm_solver_grid_is_uniform_in_log_snr
        x, nfe = sample(sampler, score, sde, seed=3)
        expected, expected_nfe = _dpm_solver_2m(ref, score, ts, x_T), len(ts)
    else:
        n = 2 if case.endswith("_2") else 1
        sampler = get_sampler("pc", ts=TS, snr=0.16, n_corrector_steps=n, progress=False)
        x, nfe = sample(sampler, score, sde, seed=3)
        expected, expected_nfe = _pc_langevin(ref, score, ts, x_T, draw, n, 0.16), len(ts) * (n + 1)
    assert_close(x, tweedie_move(ref.marginals, ts[-1])(expected, score(expected, ts[-1]), 0.0))
    assert nfe == expected_nfe


# -- the adaptive probability-flow ODE sampler --------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["dopri5", "rk45"])
@pytest.mark.parametrize("name", ["vp", "ve"])
def test_adaptive_ode_sampler_follows_the_exact_flow(method, name):
    """From its own x_T (replayed from the seed) to eps, at rtol = atol = 1e-9, the sampler lands on the exact flow of
    Gaussian data to 1e-7 (relative); the trajectory holds x_T and the end point only, the callback sees the end
    point once (t = eps, step 0), and Tweedie follows at eps."""
    sde, data = SDES[name](), gaussian(dim=2, seed=5)
    seen = []
    sampler = get_sampler("ode", method=method, rtol=1e-9, atol=1e-9, denoise=False, return_trajectory=True,
                          progress=False, callback=lambda x, t, k: seen.append((x, float(t), k)))
    x, nfe, traj = sampler(data.score_fn(sde), sde, (3, 2), generator=torch.Generator().manual_seed(6), dtype=F64)
    x_T = sde.prior_std * torch.randn(3, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    eps = sde.sampling_eps
    assert traj.shape == (2, 3, 2) and torch.equal(traj[0], x_T) and torch.equal(traj[1], x) and nfe > 20
    assert len(seen) == 1 and torch.equal(seen[0][0], x) and seen[0][1:] == (eps, 0)
    exact = gaussian_flow(data, sde, x_T, 1.0, eps)
    assert (x - exact).abs().max() < 1e-7 * (1 + exact.abs().max())
    denoised, _ = get_sampler("ode", method=method, rtol=1e-9, atol=1e-9, progress=False)(
        data.score_fn(sde), sde, (3, 2), generator=torch.Generator().manual_seed(6), dtype=F64)
    alpha, sigma = sde.marginal_coeffs(torch.tensor([eps], dtype=F64))
    assert torch.allclose(denoised, (x + sigma**2 * data.score(sde, x, torch.full((3,), eps, dtype=F64))) / alpha,
                          rtol=1e-10, atol=1e-10)


# -- exact moments from unit impulses ----------------------------------------------------------------------------------
def exact_moments(monkeypatch, run, dim, start=None):
    """Exact mean and covariance of run(batch)'s output, which is affine in x_T and in every noise draw.

    scoresde's normal draws are replaced by unit impulses: draw j is the identity in rows 1 + jD … (j + 1)D and
    zero elsewhere, so row 0 is the mean and the other rows minus row 0 are the columns of the noise-to-output
    map. start = (m, L) replaces the prior by N(m, L Lᵀ), put in through rows 1 … D in the same way.
    """
    calls = []

    def counting(shape, generator, device, dtype):
        calls.append(shape)
        return torch.zeros(shape, dtype=dtype)

    if start is not None:
        m, L = start

        def prior(shape, **kw):  # row 0 and rows after D + 1 are m, row 1 + j is m + L[:, j]
            x_T = m.expand(shape[0], dim).clone()
            x_T[1:1 + dim] += L.T[:shape[0] - 1]
            return x_T
        monkeypatch.setattr(run.sde, "prior_sampling", prior)
    monkeypatch.setattr(scoresde._utils, "randn", counting)
    monkeypatch.setattr(scoresde.sde, "randn", counting)
    run(1)
    n_blocks = len(calls) + (start is not None)  # the prior is block 0 either way
    rows = 1 + dim * n_blocks
    state = {"j": 0 if start is None else 1}

    def impulses(shape, generator, device, dtype):
        out = torch.zeros(rows, dim, dtype=dtype)
        j = state["j"]
        out[1 + j * dim:1 + (j + 1) * dim] = torch.eye(dim, dtype=dtype)
        state["j"] += 1
        return out

    monkeypatch.setattr(scoresde._utils, "randn", impulses)
    monkeypatch.setattr(scoresde.sde, "randn", impulses)
    y = run(rows)
    assert state["j"] == n_blocks
    J = y[1:] - y[0]
    return y[0], J.T @ J


class Run:
    def __init__(self, sampler, score, sde):
        self.sampler, self.score, self.sde = sampler, score, sde

    def __call__(self, batch):
        return self.sampler(self.score, self.sde, (batch, DIM), dtype=F64)[0]


def propagate(plan, score, m, P):
    """Exact moments through x' = A x + B s(x, t) + c z with s = −C_t⁻¹ x + α_t C_t⁻¹ μ: m' = M m + b, P' = M P Mᵀ + c² I."""
    eye = torch.eye(len(m), dtype=F64)
    for t, move, noisy in plan:
        A, B, c = (move(*unit) for unit in ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))
        prec = score.precision(t)
        M = A * eye - B * prec
        m = M @ m + B * score.marginals(t)[0] * prec @ score.mu
        P = M @ P @ M.T + (c**2 if noisy else 0.0) * eye
    return m, P


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("case", list(AFFINE))
def test_exact_moments_match_propagation(case, sde_name, monkeypatch):
    """The sampler's exact output mean and covariance equal the reference's moment propagation from N(0, prior_std² I)."""
    ref, sde = Reference(sde_name), SDES[sde_name]()
    score = AffineScore(gaussian(dim=DIM, seed=5), ref.marginals)
    mean, cov = exact_moments(monkeypatch, Run(sampler_for(case, ts=TS), score, sde), DIM)
    m, P = propagate(affine_plan(case, ref, TS), score, torch.zeros(DIM, dtype=F64), ref.prior_std**2 * torch.eye(DIM, dtype=F64))
    assert_close(mean, m)
    assert_close(cov, P)


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("case, eta, extra_variance", [
    ("ancestral", 1.0, False), ("ancestral_beta", 1.0, True), ("ddim", 0.0, False), ("ddim_eta0.3", 0.3, False),
    ("ddim_eta1", 1.0, False),
])
def test_one_move_from_the_exact_marginal(case, eta, extra_variance, sde_name, monkeypatch):
    """From x_t ~ p_t = N(α_t μ, C_t), one move to s gives mean α_s μ and covariance C_s − κ² Cov(x_0 | x_t),
    κ = α_s − α_t √(σ_s² − c²)/σ_t, c² = η² β̃: DDIM's marginals are exact for the true x_0 and ε, and only
    x̂_0 = E[x_0 | x_t] loses the posterior's variance (Cov(x_0 | x_t) = Σ − α_t² Σ C_t⁻¹ Σ). The β variance
    adds β − β̃ = a² σ_s² v/σ_t² more."""
    ref, sde = Reference(sde_name), SDES[sde_name]()
    data = gaussian(dim=DIM, seed=6)
    score = AffineScore(data, ref.marginals)
    t, s = 0.6123, 0.3457  # off the DDPM lattice, so VPSDE uses the continuous ᾱ(t)
    (at, st), (as_, ss) = ref.marginals(t), ref.marginals(s)
    eye, Sigma, mu = torch.eye(DIM, dtype=F64), score.cov, score.mu
    C_t, C_s = at**2 * Sigma + st**2 * eye, as_**2 * Sigma + ss**2 * eye
    v = st**2 - (at / as_) ** 2 * ss**2
    beta_tilde = v * ss**2 / st**2
    kappa = as_ - at * math.sqrt(ss**2 - eta**2 * beta_tilde) / st
    expected = C_s - kappa**2 * (Sigma - at**2 * Sigma @ torch.linalg.solve(C_t, Sigma)) + (v - beta_tilde) * extra_variance * eye
    run = Run(sampler_for(case, ts=[t, s], denoise=False), score, sde)
    mean, cov = exact_moments(monkeypatch, run, DIM, start=(at * mu, torch.linalg.cholesky(C_t)))
    assert_close(mean, as_ * mu)
    assert_close(cov, expected)
    assert v - beta_tilde > 1e-3 * ss**2  # the two ancestral variances are told apart


# -- step-size rules and grids on fixed numbers ------------------------------------------------------------------------
def test_langevin_step_size_rules():
    """ε = 2 α (r mean‖z‖ / mean‖s‖)² with per-sample norms over all data dims; annealed: ε = 2 α (r σ)²."""
    grad = torch.tensor([[3.0, 0.0, 4.0, 0.0], [6.0, 8.0, 0.0, 0.0]], dtype=F64).reshape(2, 1, 2, 2)  # norms 5, 10
    noise = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]], dtype=F64).reshape(2, 1, 2, 2)  # norms 1, 2
    alpha, sigma = torch.tensor(0.81, dtype=F64), torch.tensor(3.0, dtype=F64)
    assert langevin_step_size(grad, noise, 0.2, alpha, sigma).item() == pytest.approx(2 * 0.81 * (0.2 * 1.5 / 7.5) ** 2, rel=1e-14)
    assert annealed_langevin_step_size(grad, noise, 0.2, alpha, sigma).item() == pytest.approx(2 * 0.81 * 0.6**2, rel=1e-14)


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("n", [3, 12])
def test_dpm_solver_grid_is_uniform_in_log_snr(n, sde_name):
    """grid="logsnr" runs from T to sampling_eps in equal steps of λ_t = log(α_t/σ_t) (Lu et al. 2022)."""
    ref, sde = Reference(sde_name), SDES[sde_name]()
    ts = DPMSolverSampler(steps=n, grid="logsnr", eps=ref.sampling_eps).time_grid(sde).tolist()
    lam = [math.log(ref.marginals(t)[0] / ref.marginals(t)[1]) for t in ts]
    steps = [b - a for a, b in zip(lam[:-1], lam[1:])]
    assert len(ts) == n and ts[0] == 1.0 and ts[-1] == ref.sampling_eps
    assert max(steps) - min(steps) < 1e-9 * abs(lam[-1] - lam[0]) and min(steps) > 0
    assert DPMSolverSampler(steps=n, grid="uniform", eps=ref.sampling_eps).time_grid(sde).tolist() == pytest.approx(
        torch.linspace(1.0, ref.sampling_eps, n, dtype=F64).tolist(), abs=1e-15)


@pytest.mark.parametrize("call", [lambda: get_sampler("ddim", eta=1.0 + 1e-9), lambda: get_sampler("pc", snr=0.0),
                                  lambda: get_sampler("ode", rtol=0.0), lambda: get_sampler("ode", atol=0.0)])
def test_range_boundaries(call):
    """η ∈ [0, 1], snr > 0, rtol > 0 and atol > 0, exactly at the ends."""
    with pytest.raises(ValueError):
        call()
