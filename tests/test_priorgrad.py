"""PriorGrad's data-dependent prior N(μ, Σ) (Lee et al. 2022) against closed forms on Gaussian data N(m, C).

Under x_t = α_t x_0 + (1 − α_t) μ + σ_t L z (Σ = L Lᵀ), x_t ~ N(m_t, C_t) with m_t = α_t m + (1 − α_t) μ and
C_t = α_t² C + σ_t² Σ, so the exact score is s(x, t) = −C_t⁻¹ (x − m_t), written here from these formulas alone.
Checks, in float64: μ = 0, Σ = I is bit-for-bit today's behaviour; every sampler given the exact score ends at
N(m, C) (exact moments from unit impulses, no Monte Carlo); per-class priors by Monte Carlo; the likelihood
within 0.01 bits/dim; the loss equals PriorGrad's Σ⁻¹-norm loss and, for the exact score, its analytic floor.
"""
import math

import pytest
import torch

import scoresde
from scoresde.likelihood import likelihood
from scoresde.losses import DDPMLoss, DSMLoss, given_labels
from scoresde.prior import ClassPrior, GaussianPrior, estimate_prior, prior_from_state
from scoresde.sampling import get_sampler
from problems import GaussianMixture, gaussian, gaussian_flow
from test_exact_affine import AFFINE, TS, assert_close, exact_moments

F64 = torch.float64
DIM = 3
SDES = {"vp": lambda: scoresde.VPSDE(), "subvp": lambda: scoresde.subVPSDE(), "ve": lambda: scoresde.VESDE()}


def full_prior():
    """A global prior with a non-diagonal Σ and μ far from 0."""
    g = torch.Generator().manual_seed(11)
    A = torch.randn(DIM, DIM, generator=g, dtype=F64)
    return GaussianPrior(torch.tensor([1.5, -2.0, 0.5], dtype=F64), cov=A @ A.T + 0.3 * torch.eye(DIM, dtype=F64))


def diagonal_prior():
    return GaussianPrior(torch.tensor([-1.0, 2.0, 0.3], dtype=F64), var=torch.tensor([0.2, 3.0, 0.7], dtype=F64))


PRIORS = {"full": full_prior, "diagonal": diagonal_prior}


def prior_moments(prior):
    """μ and Σ of a global GaussianPrior, from its state (what the user gave)."""
    state = prior.state_dict()
    return state["mean"], state["cov"] if "cov" in state else torch.diag(state["var"])


class PriorScore:
    """The exact score −C_t⁻¹ (x − m_t) of data N(m, C) (per sample: m [B, D], C [B, D, D]) under the prior N(μ, Σ)."""

    def __init__(self, sde, m, C, mu, Sigma):
        self.sde, self.m, self.C, self.mu, self.Sigma = sde, m, C, mu, Sigma

    def moments(self, t):
        alpha, sigma = (v[0].item() for v in self.sde.marginal_coeffs(t[:1].to(F64)))
        return alpha * self.m + (1 - alpha) * self.mu, alpha**2 * self.C + sigma**2 * self.Sigma

    def __call__(self, x, t):
        assert bool((t == t[0]).all())
        m_t, C_t = self.moments(t)
        return -torch.linalg.solve(C_t, (x - m_t)[..., None])[..., 0] if C_t.ndim == 3 else \
            -torch.linalg.solve(C_t, (x - m_t).T).T


# -- μ = 0, Σ = I is today's behaviour exactly -------------------------------------------------------------------------
SAMPLERS = ["ancestral", "ddim", "euler_maruyama", "reverse_diffusion", "pc", "ode", "ode:heun", "dpm_solver",
            "dpm_solver_sde", "deis", "unipc", "edm", "torchsde"]


@pytest.mark.parametrize("name", SAMPLERS)
def test_standard_prior_given_explicitly_changes_nothing(name):
    """GaussianPrior(0, I) (diagonal) gives bit-identical samples, trajectories and NFE to no prior."""
    sde, data = scoresde.VPSDE(), gaussian(dim=DIM, seed=1)
    unit = sde.with_prior(GaussianPrior(torch.zeros(DIM), var=torch.ones(DIM)))
    out = [get_sampler(name, steps=6, progress=False, return_trajectory=True)(
        data.score_fn(sde), s, (4, DIM), generator=torch.Generator().manual_seed(0), dtype=F64) for s in (sde, unit)]
    assert all(torch.equal(a, b) for a, b in zip(out[0][::2], out[1][::2])) and out[0][1] == out[1][1]


def test_standard_prior_given_explicitly_leaves_loss_and_likelihood_unchanged():
    sde, data = scoresde.VPSDE(), gaussian(dim=DIM, seed=2)
    unit = sde.with_prior(GaussianPrior(torch.zeros(DIM), var=torch.ones(DIM)))
    x = data.sample(16, torch.Generator().manual_seed(0))
    losses = [DSMLoss(s).per_sample(data.score_fn(sde), x, torch.Generator().manual_seed(1)) for s in (sde, unit)]
    assert torch.equal(*losses)
    bpd = [likelihood(data.score_fn(sde), s, x, trace="exact").bpd for s in (sde, unit)]
    assert torch.equal(*bpd)
    t = torch.full((16,), 0.3, dtype=F64)
    (m0, s0), (m1, s1) = sde.marginal_prob(x, t), unit.marginal_prob(x, t)
    assert torch.equal(m0, m1) and torch.equal(s0[:, None].expand(16, DIM), s1)


# -- the prior's closed forms --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(PRIORS))
@pytest.mark.parametrize("sde_name", list(SDES))
def test_marginals_and_prior_in_closed_form(kind, sde_name, monkeypatch):
    """marginal_prob's mean is α x_0 + (1 − α) μ; prior_sampling has mean μ and covariance prior_std² Σ (exact moments);
    prior_logp is log N(z; μ, prior_std² Σ); whitening and its score maps are inverse, and Lᵀ s is the score of x̃."""
    prior = PRIORS[kind]()
    sde = SDES[sde_name]().with_prior(prior)
    mu, Sigma = prior_moments(prior)
    x0 = torch.randn(5, DIM, generator=torch.Generator().manual_seed(0), dtype=F64)
    t = torch.full((5,), 0.4, dtype=F64)
    alpha = sde.marginal_coeffs(t)[0][0]
    assert torch.allclose(sde.marginal_prob(x0, t)[0] if kind == "diagonal" else sde.unwhiten(alpha * sde.whiten(x0)),
                          alpha * x0 + (1 - alpha) * mu, rtol=1e-12, atol=1e-12)
    mean, cov = exact_moments(monkeypatch, lambda b: sde.prior_sampling((b, DIM), dtype=F64), DIM)
    assert torch.allclose(mean, mu, atol=1e-12) and torch.allclose(cov, sde.prior_std**2 * Sigma, rtol=1e-12)
    monkeypatch.undo()
    z = torch.randn(5, DIM, generator=torch.Generator().manual_seed(1), dtype=F64) * 3
    exact = torch.distributions.MultivariateNormal(mu, sde.prior_std**2 * Sigma).log_prob(z)
    assert torch.allclose(sde.prior_logp(z), exact, rtol=1e-12)
    assert torch.allclose(sde.unwhiten(sde.whiten(z)), z, rtol=1e-12)
    s = torch.randn(5, DIM, generator=torch.Generator().manual_seed(2), dtype=F64)
    assert torch.allclose(sde.unwhiten_score(prior.whiten_score(s)), s, rtol=1e-12)
    assert torch.allclose(prior.log_det(z), 0.5 * torch.logdet(Sigma).expand(5), rtol=1e-12)


# -- every sampler reaches N(m, C) -------------------------------------------------------------------------------------
CASES = list(AFFINE) + ["ode_heun", "dpm_solver_2", "dpm_solver_3"]
EXTRA = {"ode_heun": ("ode:heun", {}), "dpm_solver_2": ("dpm_solver", {"order": 2}),
         "dpm_solver_3": ("dpm_solver", {"order": 3})}


def make_sampler(case, **options):
    name, extra = EXTRA[case] if case in EXTRA else AFFINE[case][:2]
    return get_sampler(name, progress=False, **{**extra, **options})


@pytest.mark.parametrize("kind", list(PRIORS))
@pytest.mark.parametrize("sde_name", ["vp", "subvp"])
@pytest.mark.parametrize("case", CASES)
def test_every_sampler_is_its_standard_self_in_whitened_coordinates(case, sde_name, kind, monkeypatch):
    """Given the exact score of N(m, C) under the prior (written from m_t, C_t above), each fixed-step sampler's exact
    output moments are μ + L m̃ and L C̃ Lᵀ, where m̃, C̃ are the exact moments of the same sampler under the standard
    prior on the whitened data N(L⁻¹(m − μ), L⁻¹ C L⁻ᵀ) with scoresde.analytic's score; non-uniform grid, to 1e-10."""
    prior = PRIORS[kind]()
    sde, data = SDES[sde_name](), gaussian(dim=DIM, seed=3)
    m, C = data.means[0], data.covs[0]
    mu, Sigma = prior_moments(prior)
    L = torch.linalg.cholesky(Sigma)
    score = PriorScore(sde.with_prior(prior), m, C, mu, Sigma)
    sampler = make_sampler(case, ts=TS)
    mean, cov = exact_moments(monkeypatch, lambda b: sampler(score, sde.with_prior(prior), (b, DIM), dtype=F64)[0], DIM)
    white = GaussianMixture([1.0], torch.linalg.solve(L, m - mu)[None], torch.linalg.solve(L, torch.linalg.solve(L, C).T)[None])
    mean_w, cov_w = exact_moments(monkeypatch, lambda b: sampler(white.score_fn(sde), sde, (b, DIM), dtype=F64)[0], DIM)
    assert_close(mean, mu + L @ mean_w)
    assert_close(cov, L @ cov_w @ L.T)


@pytest.mark.parametrize("kind", list(PRIORS))
@pytest.mark.parametrize("case, options", [("ode_heun", {"steps": 100, "grid": "logsnr"}), ("dpm_solver_3", {"steps": 100})])
def test_ode_samplers_follow_the_exact_flow_from_the_prior(case, options, kind, monkeypatch):
    """The exact probability-flow map of Gaussian data (problems.gaussian_flow, in whitened coordinates) sends the prior
    N(μ, Σ) to the distribution every ODE sampler must reach, Tweedie's step at eps included; near N(m, C), whose
    distance from it is the prior's mismatch α_T (m − μ) at T, carried through the flow. Exact moments, to 1e-3."""
    prior = PRIORS[kind]()
    sde, data = scoresde.VPSDE(), gaussian(dim=DIM, seed=3)
    m, C = data.means[0], data.covs[0]
    mu, Sigma = prior_moments(prior)
    L = torch.linalg.cholesky(Sigma)
    white = GaussianMixture([1.0], torch.linalg.solve(L, m - mu)[None], torch.linalg.solve(L, torch.linalg.solve(L, C).T)[None])
    eps = torch.full((DIM + 1,), sde.sampling_eps, dtype=F64)
    z = torch.cat([torch.zeros(1, DIM, dtype=F64), torch.eye(DIM, dtype=F64)])  # the mean, then the columns
    x_eps = gaussian_flow(white, sde, z, sde.T, sde.sampling_eps)
    alpha, sigma = (v[0] for v in sde.marginal_coeffs(eps))
    out = mu + ((x_eps + sigma**2 * white.score(sde, x_eps, eps)) / alpha) @ L.T
    expected_mean, J = out[0], out[1:] - out[0]
    sampler = make_sampler(case, **options)
    mean, cov = exact_moments(monkeypatch, lambda b: sampler(PriorScore(sde.with_prior(prior), m, C, mu, Sigma),
                                                             sde.with_prior(prior), (b, DIM), dtype=F64)[0], DIM)
    assert (mean - expected_mean).abs().max() < 1e-3 and (cov - J.T @ J).abs().max() < 1e-3
    assert (expected_mean - m).abs().max() < 0.05 and (J.T @ J - C).abs().max() < 0.05


def class_problem():
    """Two classes with data N(m_k, C_k) and per-class diagonal priors N(μ_k, diag σ_k²) far from them."""
    a, b = gaussian(dim=DIM, seed=4), gaussian(dim=DIM, seed=5)
    ms, Cs = torch.stack([a.means[0] + 2, b.means[0] - 3]), torch.stack([a.covs[0], 0.3 * b.covs[0]])
    return ms, Cs, ClassPrior(torch.stack([ms[0] + 1, ms[1] - 1]), torch.tensor([[2.0, 0.5, 1.0], [0.1, 0.2, 0.3]]))


def test_per_class_prior_samples_each_class():
    """A per-class prior selected by labels (a per-sample μ, Σ of shape [B, D]) samples each class's N(m_k, C_k):
    sample means and covariances within 5 standard errors (Monte Carlo, DDIM with 100 steps)."""
    ms, Cs, class_prior = class_problem()
    y = torch.arange(4000) % 2
    sde = scoresde.VPSDE().with_prior(class_prior).given(y)
    score = PriorScore(sde, ms[y], Cs[y], class_prior.means[y], torch.diag_embed(class_prior.vars[y]))
    x, _ = get_sampler("ddim", steps=100, progress=False)(score, sde, (len(y), DIM),
                                                         generator=torch.Generator().manual_seed(0), dtype=F64)
    for k in range(2):
        xk, C = x[y == k], Cs[k]
        n, var = len(xk), torch.diagonal(C)
        assert ((xk.mean(0) - ms[k]).abs() < 5 * (var / n).sqrt()).all()
        se = ((var[:, None] * var[None] + C**2) / n).sqrt()
        assert ((torch.cov(xk.T) - C).abs() < 5 * se).all()


# -- likelihood -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(PRIORS))
@pytest.mark.parametrize("sde_name", ["vp", "subvp"])
def test_likelihood_within_0_01_bpd(kind, sde_name):
    """With a prior N(μ, Σ) near the data's mean (as PriorGrad measures it) in place of N(0, I), the ODE likelihood of
    N(m, C) data matches log N(x; m_eps, C_eps) within 0.01 bits/dim per sample (the rest is p_T's offset α_T (m − μ))."""
    data = gaussian(dim=DIM, seed=6)
    _, Sigma = prior_moments(PRIORS[kind]())
    near = data.means[0] + 0.2
    prior = GaussianPrior(near, cov=Sigma) if kind == "full" else GaussianPrior(near, var=torch.diagonal(Sigma))
    sde = SDES[sde_name]().with_prior(prior)
    score = PriorScore(sde, data.means[0], data.covs[0], *prior_moments(prior))
    x = data.sample(32, torch.Generator().manual_seed(0))
    m_eps, C_eps = score.moments(torch.tensor([sde.sampling_eps], dtype=F64))
    exact = -torch.distributions.MultivariateNormal(m_eps, C_eps).log_prob(x) / (DIM * math.log(2))
    result = likelihood(score, sde, x, trace="exact", rtol=1e-6, atol=1e-6)
    assert (result.bpd - exact).abs().max() < 0.01
    assert result.z.shape == x.shape


# -- the loss --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(PRIORS))
def test_loss_is_priorgrads_sigma_inverse_norm(kind):
    """DSM with λ = σ_t² is (ε_Σ − ε̂_Σ)ᵀ Σ⁻¹ (ε_Σ − ε̂_Σ)/D with ε_Σ = L z, x_t = α x_0 + (1 − α) μ + σ ε_Σ and
    ε̂_Σ = −σ Σ s(x_t) (Lee et al. 2022, Eq. 6), for any score s."""
    prior = PRIORS[kind]()
    sde = scoresde.VPSDE().with_prior(prior)
    mu, Sigma = prior_moments(prior)
    L = torch.linalg.cholesky(Sigma)
    g = torch.Generator().manual_seed(0)
    x0, z = torch.randn(6, DIM, generator=g, dtype=F64), torch.randn(6, DIM, generator=g, dtype=F64)
    t = torch.linspace(0.1, 0.9, 6, dtype=F64)
    W = torch.randn(DIM, DIM, generator=g, dtype=F64)
    score = lambda x, t: torch.tanh(x @ W) * t[:, None]  # any score
    alpha, sigma = (v[:, None] for v in sde.marginal_coeffs(t))
    eps = z @ L.T
    x_t = alpha * x0 + (1 - alpha) * mu + sigma * eps
    diff = eps + sigma * score(x_t, t) @ Sigma
    expected = (diff * torch.linalg.solve(Sigma, diff.T).T).sum(1) / DIM
    assert torch.allclose(DSMLoss(sde).per_sample(score, x0, t=t, noise=z), expected, rtol=1e-10)


@pytest.mark.parametrize("kind", list(PRIORS))
def test_loss_of_the_exact_score_is_its_floor(kind):
    """E‖Lᵀ s(x_t) + z/σ‖² σ² = D − σ² tr(C_t⁻¹ Σ) for the exact score at a fixed t: Monte Carlo within 4 SE."""
    prior = PRIORS[kind]()
    sde, data = scoresde.subVPSDE().with_prior(prior), gaussian(dim=DIM, seed=7)
    mu, Sigma = prior_moments(prior)
    score = PriorScore(sde, data.means[0], data.covs[0], mu, Sigma)
    n, t0 = 200_000, 0.35
    g = torch.Generator().manual_seed(0)
    x0 = data.sample(n, g)
    t = torch.full((n,), t0, dtype=F64)
    loss = DSMLoss(sde, reduce="sum").per_sample(score, x0, g, t=t)
    sigma = sde.marginal_coeffs(t[:1])[1].item()
    _, C_t = score.moments(t)
    floor = DIM - sigma**2 * torch.trace(torch.linalg.solve(C_t, Sigma)).item()
    assert abs(loss.mean().item() - floor) < 4 * loss.std().item() / n**0.5
    assert floor < 0.9 * DIM  # the floor is far from the loss of a zero score


def test_per_class_losses_select_each_samples_prior():
    """given_labels picks each sample's prior: the per-class loss equals the loss under each sample's own global prior."""
    ms, Cs, class_prior = class_problem()
    y = torch.tensor([0, 1, 1, 0])
    sde = scoresde.VPSDE().with_prior(class_prior)
    g = torch.Generator().manual_seed(0)
    x0, z = torch.randn(4, DIM, generator=g, dtype=F64), torch.randn(4, DIM, generator=g, dtype=F64)
    t = torch.tensor([0.2, 0.5, 0.7, 0.9], dtype=F64)
    model = lambda x, t: torch.sin(x) * t[:, None]
    got = given_labels(DSMLoss(sde), y).per_sample(model, x0, t=t, noise=z)
    for i in range(4):
        one = DSMLoss(scoresde.VPSDE().with_prior(class_prior.given(y[i])))
        assert torch.allclose(got[i], one.per_sample(model, x0[i:i + 1], t=t[i:i + 1], noise=z[i:i + 1])[0], rtol=1e-12)
    index = torch.tensor([3, 500, 10, 999])
    ddpm = given_labels(DDPMLoss(sde), y).per_sample(lambda x, i: x * 0.1, x0, index=index, noise=z)
    plain = DDPMLoss(scoresde.VPSDE()).per_sample(lambda x, i: x * 0.1, sde.given(y).whiten(x0), index=index, noise=z)
    assert torch.equal(ddpm, plain)


# -- estimation, storage and bad input -------------------------------------------------------------------------------------
def test_estimate_prior_and_state_round_trip():
    ms, Cs, _ = class_problem()
    g = torch.Generator().manual_seed(0)
    y = torch.arange(1000) % 2
    x = ms[y] + torch.randn(1000, DIM, generator=g, dtype=F64)
    per_class = estimate_prior(x, y, num_classes=2)
    assert torch.allclose(per_class.means[1], x[y == 1].mean(0)) and torch.allclose(per_class.vars[0], x[y == 0].var(0))
    glob = estimate_prior(x, min_var=2.0)
    assert torch.allclose(glob.mean, x.mean(0)) and bool((glob.scale**2 >= 2.0 - 1e-12).all())
    for prior in (per_class, glob, full_prior()):
        state = prior.state_dict()
        torch.save(state, "/dev/null")  # plain tensors and strings
        back = prior_from_state(state)
        assert repr(back) == repr(prior)
    assert torch.allclose(prior_from_state(full_prior().state_dict()).scale, full_prior().scale)


@pytest.mark.parametrize("call, match", [
    (lambda: GaussianPrior(torch.zeros(3), var=torch.tensor([1.0, 0.0, 1.0])), "var must be > 0"),
    (lambda: GaussianPrior(torch.zeros(3), var=torch.ones(2)), r"var must have the shape of mean \(3,\)"),
    (lambda: GaussianPrior(torch.zeros(3), cov=-torch.eye(3)), "cov must be positive definite"),
    (lambda: GaussianPrior(torch.zeros(3), cov=torch.eye(2)), r"cov must be \[D, D\]"),
    (lambda: GaussianPrior(torch.zeros(3), var=torch.ones(3), cov=torch.eye(3)), "not both"),
    (lambda: GaussianPrior("a"), "mean must be a tensor"),
    (lambda: GaussianPrior(torch.zeros(3)).whiten(torch.zeros(4, 2)), r"prior mean's \(3,\)"),
    (lambda: GaussianPrior(torch.zeros(4, 3)).whiten(torch.zeros(3, 3)), r"got x of shape \(3, 3\)"),
    (lambda: ClassPrior(torch.zeros(2, 3), torch.ones(2, 3)).given(None), "needs class labels"),
    (lambda: ClassPrior(torch.zeros(2, 3), torch.ones(2, 3)).given(torch.tensor([0, 2])), r"in \{0, …, 1\}"),
    (lambda: ClassPrior(torch.zeros(2, 3), torch.ones(3, 3)), "means and vars must both have shape"),
    (lambda: scoresde.VPSDE().with_prior("prior"), "prior must be a scoresde.prior.GaussianPrior"),
    (lambda: estimate_prior(torch.zeros(5, 2), torch.tensor([0, 0, 0, 0, 1]), 2), "at least twice"),
])
def test_bad_priors_are_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("overrides, match", [
    ({"sde.prior_per_class": True}, "needs config.sde.prior='data'"),
    ({"sde.prior": "data", "sde.prior_per_class": True}, "needs a class-conditional model"),
    ({"sde.prior": "data", "loss.objective": "vlb", "loss.continuous": False}, "is for score models"),
    ({"sde.prior": "data", "family": "d3pm"}, r"is for score models of config.family=.gaussian., got config.family=.d3pm."),
    ({"sde.prior": "gaussian"}, r"config.sde.prior must be one of \['standard', 'data'\]"),
    ({"sde.prior": "data", "sde.prior_min_var": 0.0}, "config.sde.prior_min_var must be > 0"),
])
def test_bad_prior_configs_fail_before_step_one(overrides, match):
    from scoresde.config import default_config, validate
    c = default_config()
    for key, value in overrides.items():
        *sections, leaf = key.split(".")
        node = c
        for section in sections:
            node = node[section]
        node[leaf] = value
    with pytest.raises(ValueError, match=match):
        validate(c)


def test_run_stores_and_loads_its_prior(tmp_path):
    """A per-class PriorGrad run saves its measured prior; load_run restores it (weights-only) and samples each class
    from its own prior; sampling without labels fails clearly; eval's loss runs."""
    from scoresde.config import apply_overrides, load_config
    from scoresde.training import Trainer
    from test_training import ROOT, TINY
    config = apply_overrides(load_config(str(ROOT / "configs/vp/toy_priorgrad.py")), TINY)
    config.training.update(device="cpu", n_iters=5)
    trainer = Trainer(config, tmp_path, progress_bar=False)
    trainer.train()
    state = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)
    assert state["prior"]["kind"] == "class" and state["prior"]["mean"].shape == (8, 2)
    run = scoresde.load_run(tmp_path, device="cpu")
    assert torch.equal(run.prior.means, trainer.prior.means) and torch.equal(run.prior.vars, trainer.prior.vars)
    x, _ = run.sample(16, "ddim", steps=5, labels=torch.arange(16) % 8)
    y, _ = trainer.sample(16, get_sampler("ddim", steps=5, progress=False))
    assert torch.equal(x, y)
    with pytest.raises(ValueError, match="needs class labels"):
        run.sample(4, "ddim", steps=5)
    assert math.isfinite(run.eval_loss(64))


@pytest.mark.parametrize("parameterization", ["eps", "v"])
@pytest.mark.parametrize("kind", list(PRIORS))
def test_get_score_fn_turns_a_whitened_network_into_the_score_of_x(kind, parameterization):
    """A network that predicts ε (or v) of x̃ = L⁻¹(x − μ) exactly gives, through get_score_fn, the exact score of x."""
    prior, data = PRIORS[kind](), gaussian(dim=DIM, seed=8)
    sde = scoresde.VPSDE().with_prior(prior)
    mu, Sigma = prior_moments(prior)
    L = torch.linalg.cholesky(Sigma)
    white = GaussianMixture([1.0], torch.linalg.solve(L, data.means[0] - mu)[None],
                            torch.linalg.solve(L, torch.linalg.solve(L, data.covs[0]).T)[None])

    def network(x_white, t):
        alpha, sigma = (v[:, None] for v in sde.marginal_coeffs(t))
        eps = -sigma * white.score(sde.standard, x_white, t)
        return eps if parameterization == "eps" else alpha * eps - sigma * (x_white - sigma * eps) / alpha

    x = torch.randn(6, DIM, generator=torch.Generator().manual_seed(0), dtype=F64) * 2
    t = torch.full((6,), 0.37, dtype=F64)
    got = scoresde.get_score_fn(network, sde, parameterization)(x, t)
    assert torch.allclose(got, PriorScore(sde, data.means[0], data.covs[0], mu, Sigma)(x, t), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_priorgrad_wraps_any_sde_and_keeps_its_process(sde_name):
    """PriorSDE changes only what sees x: the process of x̃, its capabilities and its times are the base SDE's."""
    from scoresde.priorgrad import PriorSDE
    base = SDES[sde_name]()
    prior = GaussianPrior(torch.tensor([1.0, -2.0], dtype=F64), torch.tensor([4.0, 0.25], dtype=F64))
    sde = base.with_prior(prior)
    assert isinstance(sde, PriorSDE) and sde.standard is base and sde.with_prior(None) is base
    assert (sde.N, sde.T, sde.ddpm_lattice, sde.on_lattice, sde.prior_std) == (
        base.N, base.T, base.ddpm_lattice, base.on_lattice, base.prior_std)
    t = torch.tensor([0.3, 0.9], dtype=F64)
    assert all(torch.equal(a, b) for a, b in zip(sde.coefficients(t), base.coefficients(t)))
    assert base.given(torch.tensor([0, 1])) is base and base.whiten(t) is t
    with pytest.raises(TypeError, match="prior must be a scoresde.prior.GaussianPrior or ClassPrior, got"):
        base.with_prior({"mean": 0.0})
    assert sde.whitened_score(lambda x, t: x).whitened and not base.whitened_score(lambda x, t: x).whitened
    import copy
    clone = copy.deepcopy(sde)  # copying builds the object before its fields: no lookup may recurse
    assert isinstance(clone, PriorSDE) and torch.equal(clone.prior.mean, prior.mean)
