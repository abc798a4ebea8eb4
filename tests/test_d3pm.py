"""Exact tests of D3PM (Austin et al. 2021) on enumerable categorical problems: transition matrices and schedules in
closed form, the posterior against Bayes' rule over every path of the chain, the exact x₀-predictor against the true
reverse process, the VLB of a perfect model against the data's entropy, and sampling against the data distribution."""
import itertools
import math

import pytest
import torch

from scoresde.discrete import (D3PM, TRANSITIONS, D3PMLoss, AncestralSampler, cosine_betas, get_sampler, kl_categorical,
                               linear_betas, make_betas, mutual_information_betas, nll_bits_per_dim, vlb_term)
from tolerance import ulps

F64 = torch.float64
SCHEDULE = {"uniform": "cosine", "absorbing": "mutual_information", "gaussian": "linear"}
NAMES = list(SCHEDULE)


def process(name, K=4, T=4, **kw):
    """A short chain whose rates are large enough that every matrix entry matters."""
    betas = {"uniform": torch.tensor([0.1, 0.3, 0.2, 0.6, 0.5, 0.9]), "absorbing": torch.tensor([0.1, 0.3, 0.2, 0.6, 0.5, 0.9]),
             "gaussian": torch.tensor([0.2, 0.8, 0.5, 1.0, 0.4, 0.9])}[name][:T]
    return D3PM(TRANSITIONS[name](K), kw.get("betas", betas).double())


def path_table(p: D3PM):
    """J[s, t, x_0, x_s, x_t] = q(x_s, x_t | x_0) by summing Π_k Q_k[x_{k−1}, x_k] over every path x_0 … x_T."""
    K, T = p.K, p.T
    paths = torch.tensor(list(itertools.product(range(K), repeat=T + 1)))
    prob = torch.ones(len(paths), dtype=F64)
    for k in range(1, T + 1):
        prob = prob * p.Q[k][paths[:, k - 1], paths[:, k]]
    J = torch.zeros(T + 1, T + 1, K, K, K, dtype=F64)
    for s in range(T + 1):
        for t in range(T + 1):
            J[s, t].index_put_((paths[:, 0], paths[:, s], paths[:, t]), prob, accumulate=True)
    return J


def data_distribution(K0, D, seed=0):
    """A correlated distribution over K0^D joint states (the rows of `states`)."""
    g = torch.Generator().manual_seed(seed)
    p0 = torch.softmax(1.5 * torch.randn(K0**D, generator=g, dtype=F64), 0)
    states = torch.tensor(list(itertools.product(range(K0), repeat=D)))
    return p0, states


class ExactModel:
    """p̃(x₀ᵈ | x_t) = q(x₀ᵈ | x_t), the per-dimension marginals of the exact posterior, by enumeration; as logits."""

    def __init__(self, p: D3PM, p0, states):
        self.p, self.D, K = p, states.shape[1], p.K
        self.xt = torch.tensor(list(itertools.product(range(K), repeat=self.D)))            # every joint x_t
        self.table = []
        for t in range(p.T + 1):
            lik = p.Qbar[t][states[:, None, :], self.xt[None, :, :]].prod(-1)           # q(x_t | x_0) [S0, St]
            joint = p0[:, None] * lik
            post = joint / joint.sum(0).clamp(min=1e-300)                               # q(x_0 | x_t)
            onehot = torch.nn.functional.one_hot(states, p.K0).double()                  # [S0, D, K0]
            self.table.append(torch.einsum("ab,adk->bdk", post, onehot).clamp(min=1e-300).log())
        self.table = torch.stack(self.table)                                           # [T+1, St, D, K0]

    def index(self, x):
        return (x * self.p.K ** torch.arange(self.D - 1, -1, -1)).sum(-1)

    def __call__(self, x_t, t):
        return self.table[t, self.index(x_t)]


# -- transitions, products and schedules -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_every_qbar_is_stochastic_and_the_ordered_product_of_the_q(name):
    """Rows of Q_t and Q̄_t sum to 1 (up to rounding), entries ≥ 0, Q̄_t = Q_1 ⋯ Q_t in that order, and Q_t entrywise equals
    its formula in Austin et al. (2021): uniform (1−β)δ + β/K, absorbing (1−β)δ + β[j = m], discretised Gaussian."""
    K, betas = 5, torch.tensor([0.05, 0.3, 0.9, 0.5], dtype=F64)
    p = D3PM(TRANSITIONS[name](K), betas)
    Ks = p.K
    for t in range(1, p.T + 1):
        b = betas[t - 1].item()
        for i in range(Ks):
            for j in range(Ks):
                if name == "uniform":
                    want = (1 - b) * (i == j) + b / K
                elif name == "absorbing":
                    want = (1 - b) * (i == j) + b * (j == K)
                else:
                    z = sum(math.exp(-4 * n**2 / ((K - 1) ** 2 * b)) for n in range(-(K - 1), K))
                    want = math.exp(-4 * (i - j) ** 2 / ((K - 1) ** 2 * b)) / z if i != j else None
                if want is not None:
                    # a normalised exponential over 2K − 1 terms: a few ulps of 1 per term
                    assert abs(p.Q[t][i, j].item() - want) <= ulps(4 * Ks), (t, i, j)
    product = torch.eye(Ks, dtype=F64)
    for t in range(1, p.T + 1):
        product = product @ p.Q[t]
        # t products of stochastic matrices, each entry a dot of Ks terms in [0, 1]: t·Ks ulps of 1 per side
        assert torch.allclose(p.Qbar[t], product, rtol=0, atol=ulps(2 * t * Ks))
    for M in (p.Q, p.Qbar):  # a row sum of Ks entries of a product of up to T matrices: (T + 1)·Ks ulps of 1
        assert (M >= 0).all() and torch.allclose(M.sum(-1), torch.ones(p.T + 1, Ks, dtype=F64), rtol=0,
                                                 atol=ulps((p.T + 1) * Ks))
    if name == "gaussian":  # symmetric, hence doubly stochastic: the uniform distribution is stationary
        assert torch.allclose(p.Q, p.Q.transpose(1, 2), atol=1e-15)
        assert not torch.allclose(p.Q[1] @ p.Q[3], p.Q[3] @ p.Q[1], atol=1e-6)  # so the order above was tested


def test_schedules_in_closed_form():
    """Cosine: ᾱ_t = cos((t/T + s)/(1 + s) π/2)/cos(s/(1 + s) π/2) until the 0.999 cap; mutual information:
    β_t = 1/(T − t + 1), so the absorbing ᾱ_t = 1 − t/T and I(x_t; x_0) = ᾱ_t H(x_0) falls linearly; linear ends."""
    T, s = 50, 0.008
    alpha_bar = torch.cumprod(1 - cosine_betas(T), 0)
    t = torch.arange(1, T + 1, dtype=F64)
    want = torch.cos((t / T + s) / (1 + s) * math.pi / 2) / math.cos(s / (1 + s) * math.pi / 2)
    assert torch.allclose(alpha_bar[:-1], want[:-1], rtol=1e-12, atol=1e-15)
    assert cosine_betas(T)[-1] == 0.999
    assert torch.allclose(torch.cumprod(1 - mutual_information_betas(T), 0), 1 - t / T, atol=1e-14)
    lin = linear_betas(T, 1e-4, 0.02)
    assert lin[0] == 1e-4 and abs(lin[-1].item() - 0.02) < 1e-15 and torch.allclose(lin.diff(), lin.diff()[:1].expand(T - 1))
    for K in (2, 3):  # I(x_t; x_0) under absorbing = ᾱ_t H(x_0) for any data distribution
        p0 = torch.softmax(torch.arange(K, dtype=F64), 0)
        p = D3PM(TRANSITIONS["absorbing"](K), mutual_information_betas(T))
        joint = p0[:, None] * p.Qbar[:, :K]                                      # [T+1, K0, K]
        marg = joint.sum(1, keepdim=True)
        mi = torch.where(joint > 0, joint * (joint / (p0[:, None] * marg)).log(), 0.0).sum((1, 2))
        H = -(p0 * p0.log()).sum()
        assert torch.allclose(mi, (1 - torch.arange(T + 1, dtype=F64) / T) * H, atol=1e-13)


@pytest.mark.parametrize("K", [2, 17])
def test_absorbing_ends_all_mask_and_uniform_ends_uniform(K):
    """At t = T the absorbing chain (mutual-information schedule) is [MASK] with probability 1 (exact up to the
    rounding); the uniform chain (cosine) is uniform up to ᾱ_T(1 − 1/K) < 2e-6 and its distance to uniform falls monotonically; the
    discretised Gaussian (linear 1e-4 → 0.02) on 17 ordinal states ends within 1e-4 nats of uniform."""
    T = 1000
    absorbing = D3PM(TRANSITIONS["absorbing"](K), make_betas("mutual_information", T, "absorbing"))
    # Q̄_T is a running product of T matrices, each entry a dot of K + 1 terms in [0, 1]: T·(K + 1) ulps of 1
    assert torch.allclose(absorbing.Qbar[T][:, K], torch.ones(K + 1, dtype=F64), rtol=0, atol=ulps(T * (K + 1)))
    uniform = D3PM(TRANSITIONS["uniform"](K), make_betas("cosine", T, "uniform"))
    gap = (uniform.Qbar - 1 / K).abs().amax((1, 2))
    alpha_bar_T = torch.prod(1 - uniform.betas)  # 0.001 ᾱ_{T−1}: the last β is capped at 0.999
    # the same running product: T·K ulps of 1, far below ᾱ_T/K, the error of a wrong coefficient (6e-8 for K = 17)
    tol = ulps(T * K)
    assert abs(gap[T] - alpha_bar_T * (1 - 1 / K)) < tol and alpha_bar_T < 2e-6 and bool((gap.diff() <= tol).all())
    if K == 17:
        gauss = D3PM(TRANSITIONS["gaussian"](K), make_betas("linear", T, "gaussian"))
        L_T = kl_categorical(gauss.Qbar[T].log(), gauss.prior.log())
        assert L_T.max() < 1e-4 and gauss.Qbar[T].min() > 0


# -- the posterior and the reverse process, against enumeration --------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_posterior_is_bayes_rule_over_every_path(name):
    """q(x_s | x_t, x_0) for every 0 ≤ s < t ≤ T (skips included), x_0 and reachable x_t equals
    q(x_s, x_t | x_0)/q(x_t | x_0) summed over all paths of the chain (1e-12); q(x_t | x_0) equals the path sum too."""
    p = process(name)
    J = path_table(p)
    K0, K = p.K0, p.K
    x0, xt = torch.meshgrid(torch.arange(K0), torch.arange(K), indexing="ij")
    x0, xt = x0.reshape(-1, 1), xt.reshape(-1, 1)
    checked = 0
    for t in range(1, p.T + 1):
        q_t = J[0, t][:K0].sum(1)                                          # q(x_t | x_0) [K0, K]
        assert torch.allclose(p.q_logprobs(torch.arange(K0)[:, None], torch.full((K0,), t), F64).exp()[:, 0], q_t,
                              atol=1e-13)
        for s in range(t):
            got = p.posterior_logprobs(x0, xt, torch.full((len(x0),), s), torch.full((len(x0),), t), F64).exp()[:, 0]
            joint = J[s, t][x0[:, 0], :, xt[:, 0]]                             # q(x_s, x_t | x_0) [n, K]
            ok = joint.sum(1) > 0
            assert torch.allclose(got[ok], joint[ok] / joint[ok].sum(1, keepdim=True), rtol=0, atol=1e-12), (s, t)
            checked += int(ok.sum())
    assert checked > 30


@pytest.mark.parametrize("name", NAMES)
def test_exact_x0_predictor_gives_the_true_reverse_process(name):
    """Two correlated variables: with p̃(x₀ᵈ | x_t) = q(x₀ᵈ | x_t), p_θ(x_sᵈ | x_t) = Σ q(x_sᵈ | x_tᵈ, x̃₀) p̃(x̃₀ | x_t)
    equals the true reverse marginal q(x_sᵈ | x_t) from the path sums, for every s < t and every reachable joint x_t
    (1e-10). The paper's Eq. 4 (weighted also by q(x_t | x̃₀)) fails this for uniform and Gaussian transitions."""
    p = process(name, K=3, T=3)
    p0, states = data_distribution(p.K0, 2)
    J = path_table(p)
    model = ExactModel(p, p0, states)
    xt = model.xt
    for t in range(1, p.T + 1):
        lik = p.Qbar[t][states[:, None, :], xt[None, :, :]].prod(-1)             # q(x_t | x_0) [S0, St]
        reachable = (p0[:, None] * lik).sum(0) > 0
        for s in range(t):
            got = p.reverse_logprobs(model(xt, torch.full((len(xt),), t)), xt, torch.full((len(xt),), s),
                                     torch.full((len(xt),), t)).exp()          # [St, D, K]
            for d in range(2):
                other = 1 - d
                # q(x_sᵈ, x_t | x_0) = q(x_sᵈ, x_tᵈ | x_0ᵈ) q(x_t^{other} | x_0^{other}), summed against p0
                pair = J[s, t][states[:, d][:, None], :, xt[:, d][None, :]]            # [S0, St, K]
                far = p.Qbar[t][states[:, other][:, None], xt[:, other][None, :]]      # [S0, St]
                want = torch.einsum("a,abk,ab->bk", p0, pair, far)
                want = want / want.sum(1, keepdim=True)
                assert torch.allclose(got[reachable, d], want[reachable], rtol=0, atol=1e-10), (s, t, d)


def _exact_vlb(p: D3PM, model, x0: int, steps=None):
    """E_q[L_vlb(x_0)] in nats for one variable, with the expectation over x_t by enumeration, not sampling."""
    grid = p.time_grid(steps).tolist()
    total = p.prior_kl(torch.tensor([[x0]]), F64).item()
    xt = torch.arange(p.K)[:, None]
    for t, s in zip(grid[:-1], grid[1:]):
        n = len(xt)
        q_t = p.q_logprobs(torch.full((n, 1), x0), torch.full((n,), t), F64).exp()[:, 0, :].diagonal()
        logq = p.posterior_logprobs(torch.full((n, 1), x0), xt, torch.full((n,), s), torch.full((n,), t), F64)
        logp = p.reverse_logprobs(model(xt, torch.full((n,), t)), xt, torch.full((n,), s), torch.full((n,), t))
        kl = kl_categorical(logq, logp)[:, 0]
        total += float((q_t * torch.where(q_t > 0, kl, 0.0)).sum())
    return total


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("steps", [None, 2])
def test_vlb_of_the_exact_model_is_the_data_nll_up_to_the_prior_term(name, steps):
    """One variable, exact model: L_vlb(x_0) = −log q(x_0) + E_{q(x_T|x_0)}[log q(x_T)/p(x_T)] (1e-10), on the full
    chain and with skips; the absorbing chain ends in [MASK] exactly, so there L_vlb = −log q(x_0), the entropy."""
    p = process(name, K=4, T=4)
    if name == "absorbing":
        p = D3PM(TRANSITIONS["absorbing"](4), mutual_information_betas(4))
    p0, states = data_distribution(p.K0, 1, seed=1)
    model = ExactModel(p, p0, states)
    q_T = p0 @ p.Qbar[p.T][:p.K0]
    for x0 in range(p.K0):
        want = -math.log(p0[x0]) + float((p.Qbar[p.T][x0] * torch.where(q_T > 0, (q_T / p.prior).log(), 0.0)).sum())
        assert abs(_exact_vlb(p, model, x0, steps) - want) < 1e-10, x0
        if name == "absorbing":
            assert abs(want + math.log(p0[x0])) < 1e-12


@pytest.mark.parametrize("name", ["absorbing", "uniform"])
@pytest.mark.parametrize("D", [1, 3])
def test_nll_bits_per_dim_of_the_exact_model_is_the_entropy(name, D):
    """nll_bits_per_dim (one x_t draw per term) averaged over 4000 draws x_0 ~ q equals (H + KL(q(x_T) ‖ p(x_T)))/ln 2
    per dimension within 4 standard errors, for one variable and for three independent ones (where the factorised
    exact model is the true reverse); for absorbing this is the entropy in bits exactly."""
    # uniform with T = 3 ends at ᾱ_T = 0.504, far from its prior, so the L_T term matters
    p = D3PM(TRANSITIONS[name](4), make_betas(SCHEDULE[name], 6, name)) if name == "absorbing" else process(name, T=3)
    p1, _ = data_distribution(p.K0, 1, seed=2)
    states = torch.tensor(list(itertools.product(range(p.K0), repeat=D)))
    p0 = p1[states].prod(-1)
    model = ExactModel(p, p0, states)
    g = torch.Generator().manual_seed(0)
    x0 = states[torch.multinomial(p0, 4000, replacement=True, generator=g)]
    bpd, nfe = nll_bits_per_dim(model, p, x0, generator=g)
    q_T = p1 @ p.Qbar[p.T][:p.K0]
    want = (-(p1 * p1.log()).sum() + kl_categorical(q_T.log(), p.prior.log())) / math.log(2)
    assert nfe == p.T and bpd.dtype == F64 and bpd.shape == (4000,)
    if name == "uniform":  # E[L_T] (what nll adds) is far from KL(q(x_T) ‖ p(x_T)) (what remains in the bound)
        assert (p1 @ p.prior_kl(torch.arange(p.K0)[:, None], F64)[:, 0] - (want * math.log(2) + (p1 * p1.log()).sum())) > 0.05
    assert abs(bpd.mean() - want) < 4 * bpd.std() / len(bpd) ** 0.5 + 1e-12
    if name == "absorbing":
        assert abs(want + (p1 * p1.log2()).sum()) < 1e-12


# -- sampling ----------------------------------------------------------------------------------------------------------
def _tv(samples, states, p):
    counts = (samples[:, None, :] == states[None]).all(-1).double().mean(0)
    return 0.5 * (counts - p).abs().sum().item()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("steps", [None, 3, 1])
def test_ancestral_sampling_with_skips_recovers_one_variable_exactly(name, steps):
    """One variable, exact model, 40 000 samples: the histogram is q(x_0) within TV 0.012 (about 4 Monte-Carlo
    standard errors) with all T steps and with skips (3 steps, 1 step), since the skipped reverse of one variable is
    exact too; NFE = steps. Gaussian T = 4 ends far from uniform, so its target is Σ p(x_T) q(x_0 | x_T)."""
    p = process(name, K=5, T=6) if name != "absorbing" else D3PM(TRANSITIONS["absorbing"](5), mutual_information_betas(6))
    p0, states = data_distribution(p.K0, 1, seed=3)
    model = ExactModel(p, p0, states)
    x, nfe = AncestralSampler(steps=steps)(model, p, (40_000, 1), generator=torch.Generator().manual_seed(1))
    assert nfe == (steps or p.T) and x.dtype == torch.long
    q_T = p0 @ p.Qbar[p.T][:p.K0]
    target = ((p.prior / q_T).nan_to_num(0.0, 0.0, 0.0) @ (p0[:, None] * p.Qbar[p.T][:p.K0]).T)  # Σ p(x_T) q(x_0|x_T)
    assert abs(target.sum() - 1) < 1e-12
    assert _tv(x, states, target) < 0.012


def _sampler_law(p: D3PM, model, steps=None):
    """The exact law of ancestral sampling for two variables: the distribution over joint states pushed through
    Π_d p_θ(x_sᵈ | x_t) step by step (a [K², K²] kernel per step)."""
    xt = model.xt
    law = p.prior[xt].prod(-1)                                                  # p(x_T) over joint states
    grid = p.time_grid(steps).tolist()
    for t, s in zip(grid[:-1], grid[1:]):
        n = len(xt)
        step = p.reverse_logprobs(model(xt, torch.full((n,), t)), xt, torch.full((n,), s), torch.full((n,), t)).exp()
        kernel = (step[:, 0, :, None] * step[:, 1, None, :]).reshape(n, -1)     # [from, to]
        assert torch.isfinite(kernel[law > 0]).all()                             # unreachable x_t have no reverse
        law = law @ torch.where(law[:, None] > 0, kernel, 0.0)
    return law.reshape(p.K, p.K)[:p.K0, :p.K0].reshape(-1), law.sum()


def test_ancestral_sampling_recovers_two_correlated_variables():
    """Two correlated variables, absorbing chain (β_t = 1/(T − t + 1)), exact per-variable model. The factorised
    reverse is exact except when both variables unmask in the same step, which happens with probability
    Σ_t (t/T)² (1/t)² = 1/T and then draws them from the product of the marginals; so the sampler's exact law
    (propagated through Π_d p_θ(x_sᵈ | x_t)) is (1 − 1/T) q(x_0) + (1/T) Π_d q(x_0ᵈ) (1e-12), for T = 20 and 200, and
    with one step from all-[MASK] it is the product itself. 20 000 draws of the sampler match its law within TV 0.02."""
    p0, states = data_distribution(3, 2, seed=4)
    marg = p0.reshape(3, 3)
    product = (marg.sum(1)[:, None] * marg.sum(0)[None]).reshape(-1)
    assert 0.5 * (product - p0).abs().sum() > 0.1
    for T in (200, 20):
        p = D3PM(TRANSITIONS["absorbing"](3), mutual_information_betas(T))
        model = ExactModel(p, p0, states)
        law, mass = _sampler_law(p, model)
        assert abs(mass - 1) < 1e-12 and torch.allclose(law, (1 - 1 / T) * p0 + product / T, rtol=0, atol=1e-12), T
        one, _ = _sampler_law(p, model, steps=1)
        assert torch.allclose(one, product, rtol=0, atol=1e-12)
    g = torch.Generator().manual_seed(2)
    x, nfe = AncestralSampler()(model, p, (20_000, 2), generator=g)
    assert nfe == 20 and _tv(x, states, law) < 0.02
    x1, _ = AncestralSampler(steps=1)(model, p, (20_000, 2), generator=g)
    assert _tv(x1, states, product) < 0.02


# -- the hybrid loss ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("coeff", [0.0, 0.5])
def test_hybrid_loss_is_the_mean_vlb_term_plus_lambda_cross_entropy(coeff):
    """E[L_λ] = (1/T) Σ_t (E[L_{t−1}] + λ H(x_0 | x_t)) / ln 2 for the exact model (its KL terms are those of the true
    reverse), by enumeration; the Monte-Carlo mean over 20 000 draws is within 4 standard errors."""
    p = process("uniform", K=3, T=4)
    p0, states = data_distribution(p.K0, 1, seed=5)
    model = ExactModel(p, p0, states)
    want = 0.0
    for x0 in range(p.K0):
        step_terms = _exact_vlb(p, model, x0) - p.prior_kl(torch.tensor([[x0]]), F64).item()
        ce = sum(float((p.Qbar[t][x0] * -model.table[t][:, 0, x0]).sum()) for t in range(1, p.T + 1))
        want += p0[x0].item() * (step_terms + coeff * ce) / p.T / math.log(2)
    loss = D3PMLoss(p, hybrid_coeff=coeff)
    g = torch.Generator().manual_seed(3)
    x0 = torch.multinomial(p0, 20_000, replacement=True, generator=g)[:, None]
    values = torch.stack([loss(model, x0[i:i + 100], g) for i in range(0, len(x0), 100)])  # 200 batch means
    assert abs(values.mean().item() - want) < 4 * values.std().item() / len(values) ** 0.5


def test_loss_gradients_stay_finite_where_transition_entries_underflow():
    """The discretised Gaussian on 17 states with β_1 = 1e-4 has entries exp(−4·16²/(16²·10⁻⁴)) = 0 in float64: the
    loss and its gradient with respect to the logits are finite at every t (log 0 is a finite LOG_ZERO, so a
    log-sum-exp over only impossible terms has a gradient)."""
    p = D3PM(TRANSITIONS["gaussian"](17), linear_betas(40, 1e-4, 0.02))
    assert (p.Q[1] == 0).any()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 17, (64, 1, 4, 4), generator=g)
    logits = torch.randn(64, 1, 4, 4, 17, generator=g, requires_grad=True)
    for t in (1, 2, 40):
        tt = torch.full((64,), t)
        kl, ce = vlb_term(lambda x, t: logits, p, x0, tt - 1, tt, g)
        (grad,) = torch.autograd.grad((kl + ce).mean(), logits)
        assert torch.isfinite(kl).all() and torch.isfinite(grad).all() and grad.abs().sum() > 0, t


@pytest.mark.parametrize("name", NAMES)
def test_bayes_logits_give_the_reverse_of_the_papers_eq_4(name):
    """With config.d3pm.bayes_logits the network's logits f become f + log q(x_t | x̃₀), and the reverse process is
    Austin et al.'s Eq. 4, p_θ(x_s | x_t) ∝ Σ_x̃₀ q(x_s, x_t | x̃₀) softmax(f)(x̃₀), by path sums (1e-12); without
    it the two differ (uniform, Gaussian)."""
    from scoresde import families
    from scoresde.config import default_config
    p = process(name)
    J = path_table(p)
    config = default_config()
    g = torch.Generator().manual_seed(0)
    xt = torch.arange(p.K)[:, None]
    n = len(xt)
    f = torch.randn(n, 1, p.K0, generator=g, dtype=F64)
    for flag in (True, False):
        config.d3pm.bayes_logits = flag
        denoise = families.D3PM.score_fn(lambda x, t: f, p, config)
        for t in range(1, p.T + 1):
            for s in range(t):
                got = p.reverse_logprobs(denoise(xt, torch.full((n,), t)), xt, torch.full((n,), s),
                                         torch.full((n,), t)).exp()[:, 0]
                prior = torch.softmax(f[:, 0], -1)                                   # [x_t, x̃₀]
                eq4 = torch.einsum("bk,kjb->bj", prior, J[s, t][:p.K0][:, :, torch.arange(p.K)])
                eq4 = eq4 / eq4.sum(1, keepdim=True)
                ok = eq4.sum(1) > 0
                # without the flag the forms differ, except for absorbing, where q(x_t | x̃₀) is constant in x̃₀
                same = torch.allclose(got[ok], eq4[ok], rtol=0, atol=1e-12)
                assert same == (flag or name == "absorbing"), (flag, s, t)
