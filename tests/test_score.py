"""The declared Score: every wrapper keeps every fact, and a guided learned-variance score keeps its learned Σ."""
import dataclasses

import pytest
import torch

import scoresde
from scoresde import guidance, sr3
from scoresde._utils import append_dims
from scoresde.prior import GaussianPrior
from scoresde.sampling import CountedScore, get_sampler
from scoresde.score import Score, as_score

F64 = torch.float64
K = 3  # classes of the conditional test model

# Facts no wrapper below may change: each differs from its default, so a wrapper that rebuilt the Score
# from defaults instead of deriving it would fail on every one.
FACTS = dict(continuous=False, parameterization="v", learned_variance=True, noise_level=True, num_classes=K,
             data_shape=(2,))


def declared():
    def fn(x, t, y=None):
        return -x, torch.ones_like(x)
    return Score(fn, **FACTS)


WRAPPERS = {
    "conditional": (lambda s: guidance.conditional(s, 1), {}),
    "classifier_free": (lambda s: guidance.classifier_free(s, 1, 2.0), {"batch_factor": 2}),
    "classifier_guidance": (lambda s: guidance.classifier_guidance(s, lambda x, t: x[:, :1].expand(-1, K), 1),
                            {"classifier_guided": True}),
    "sr3.condition_on": (lambda s: sr3.condition_on(s, torch.zeros(4, 2)), {}),
    "whitened_score": (lambda s: scoresde.VPSDE().with_prior(GaussianPrior(torch.ones(2), var=torch.full((2,), 4.0)))
                       .whitened_score(s), {"whitened": True}),
}


@pytest.mark.parametrize("name", WRAPPERS)
def test_every_wrapper_keeps_every_declared_fact(name):
    wrap, changed = WRAPPERS[name]
    before = declared()
    after = wrap(before)
    assert isinstance(after, Score)
    for f in dataclasses.fields(Score):
        if f.name != "fn":
            assert getattr(after, f.name) == changed.get(f.name, getattr(before, f.name)), f.name
    score, v = after.score_and_v(torch.randn(4, 2), torch.full((4,), 0.5))
    assert score.shape == v.shape == (4, 2)


def test_wrappers_compose_their_costs():
    s = guidance.classifier_free(declared(), 1, 2.0)
    assert guidance.classifier_free(s, 1, 3.0).batch_factor == 4


def conditional_model(learned: bool, sde):
    """ε(x, i, y) = (0.8 + 0.1 y) √(1 − ᾱ_i) x + 0.05 sin x, and v ≡ 1 (Σ = β) when the variance is learned."""
    abar = sde.alphas_cumprod

    def model(x, index, y):
        a = append_dims(abar.to(x.device)[index].to(x.dtype), x.ndim)
        eps = append_dims(0.8 + 0.1 * y.to(x.dtype), x.ndim) * (1 - a).sqrt() * x + 0.05 * torch.sin(x)
        return torch.cat([eps, torch.ones_like(x)], 1) if learned else eps
    model.num_classes = K
    return model


@pytest.mark.parametrize("w", [0.0, 2.0])
def test_a_guided_learned_variance_score_keeps_its_learned_sigma_under_ancestral(w, device):
    """With v ≡ 1 the learned Σ is β: the guided learned-variance model under ancestral's default variance must
    sample what the same guided means do with Σ = β, and not what they do with β̃ (the silent fallback)."""
    sde = scoresde.VPSDE()

    def run(learned, variance):
        score = scoresde.get_score_fn(conditional_model(learned, sde), sde, "eps", continuous=False,
                                      learned_variance=learned)
        g = torch.Generator(device).manual_seed(5)
        sampler = get_sampler("ancestral", steps=20, variance=variance, progress=False)
        return sampler(guidance.classifier_free(score, 2, w), sde, (64, 2), generator=g, device=device, dtype=F64)

    learned, nfe = run(True, None)
    beta, _ = run(False, "beta")
    beta_tilde, _ = run(False, "beta_tilde")
    assert nfe == 20  # ancestral: its last step (z = 0) is the denoise
    # exp(1 · log β + 0 · log β̃) against β: a few ulps per step, scaled by |x| ≈ 1 over 20 steps.
    torch.testing.assert_close(learned, beta, rtol=0, atol=64 * 20 * torch.finfo(F64).eps)
    assert (learned - beta_tilde).abs().max() > 1e-3  # the two variances are far apart at 20 steps


def test_counting_keeps_the_declared_facts():
    s = declared()
    counted = CountedScore(guidance.conditional(s, 0))
    assert counted.score.continuous is False and counted.learned_variance and counted.score.data_shape == (2,)
    counted.score_and_v(torch.randn(4, 2), torch.full((4,), 0.5))
    assert counted.nfe == 1


def test_declared_facts_are_checked_by_name():
    for bad, match in [({"continuous": 1}, "continuous must be True or False"),
                       ({"parameterization": "noise"}, "parameterization must be one of eps, score, x0, v, edm, edm_vp, edm_ve, got 'noise'"),
                       ({"num_classes": -1}, "num_classes must be a non-negative integer, got -1"),
                       ({"batch_factor": 0}, "batch_factor")]:
        with pytest.raises((ValueError, TypeError), match=match):
            Score(lambda x, t: x, **bad)
    with pytest.raises(ValueError, match="score_and_v needs a score that declares a learned variance"):
        Score(lambda x, t: x).score_and_v(torch.zeros(1, 2), torch.ones(1))
    assert as_score(as_score(lambda x, t: x)).continuous is True
