"""Conditioning and guidance, checked against Gaussian mixtures whose classes are their components.

The exact class-conditional score ∇ log p_t(x | y) is the component's score, the unconditional one is the
mixture's, and the exact noise-aware classifier is Bayes' rule, so every guided score has a closed form.
"""
import math

import pytest
import torch

import scoresde
from scoresde import guidance
from scoresde.analytic import GaussianMixture
from scoresde.losses import drop_labels
from scoresde.metrics import sliced_wasserstein
from scoresde.sampling import get_sampler

SDE = scoresde.VPSDE()


def three_classes():
    """Three overlapping 2-D classes with unequal weights and covariances."""
    covs = torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.2, 0.0], [0.0, 0.5]], [[0.4, -0.1], [-0.1, 0.3]]],
                        dtype=torch.float64)
    return GaussianMixture([0.5, 0.3, 0.2], [[-1.5, 0.0], [1.5, 0.5], [0.0, 2.0]], covs)


def points(n=64, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, 2, generator=g, dtype=torch.float64) * 1.5).to(device)
    t = (torch.rand(n, generator=g, dtype=torch.float64) * 0.99 + 0.01).to(device)
    return x, t


# -- the guided score against its closed form -------------------------------------------------------------

@pytest.mark.parametrize("w", [0.0, -1.0, 0.5, 2.0, -0.5])
def test_classifier_free_score_is_the_gradient_of_the_tilted_density(w, device):
    """(1 + w) s(x|y) − w s(x) = ∇ log [p_t(x | y)^(1+w) p_t(x)^(−w)], by autograd of the log-densities."""
    mix = three_classes()
    x, t = points(device=device)
    y = torch.tensor([0, 1, 2] * 21 + [1], device=device)
    guided = guidance.classifier_free(mix.conditional_score_fn(SDE), y, w)(x, t)
    xg = x.clone().requires_grad_(True)
    log_cond = torch.stack([mix.component(k).log_prob(SDE, xg, t) for k in range(3)], 1).gather(1, y[:, None])[:, 0]
    log_tilted = (1 + w) * log_cond - w * mix.log_prob(SDE, xg, t)
    (expected,) = torch.autograd.grad(log_tilted.sum(), xg)
    torch.testing.assert_close(guided, expected, rtol=1e-9, atol=1e-9)


def test_classifier_guidance_with_the_exact_classifier_at_scale_1_is_the_conditional_score(device):
    """s(x) + ∇ log p(y | x) = ∇ log p(x | y) (Bayes' rule), through the autograd of the classifier's logits."""
    mix = three_classes()
    x, t = points(device=device)
    y = torch.tensor([2, 0, 1, 1] * 16, device=device)
    unconditional = mix.score_fn(SDE)
    with torch.no_grad():  # as inside a sampler
        guided = guidance.classifier_guidance(unconditional, mix.classifier(SDE), y, scale=1.0)(x, t)
    torch.testing.assert_close(guided, mix.conditional_score_fn(SDE)(x, t, y), rtol=1e-9, atol=1e-9)
    with torch.inference_mode():
        again = guidance.classifier_guidance(unconditional, mix.classifier(SDE), y, scale=1.0)(x, t)
    torch.testing.assert_close(again, guided, rtol=0, atol=0)
    half = guidance.classifier_guidance(unconditional, mix.classifier(SDE), y, scale=0.5)(x, t)
    torch.testing.assert_close(half, 0.5 * (guided + unconditional(x, t)), rtol=1e-9, atol=1e-9)


# -- sampling: w = 0 is the class, w = −1 the mixture --------------------------------------------------------

def _run(score_fn, n, sampler="dpm_solver", steps=25, seed=0, device="cpu"):
    s = get_sampler(sampler, steps=steps, progress=False)
    return s(score_fn, SDE, (n, 2), generator=torch.Generator(device=device).manual_seed(seed), device=device,
             dtype=torch.float64)


@pytest.mark.parametrize("sampler", ["dpm_solver", "ancestral"])
def test_w0_and_w_minus_1_follow_the_class_and_the_mixture_path_by_path(sampler, device):
    """Same noise, same path: w = 0 is exactly the sampler on the class's own score, w = −1 on the mixture's."""
    mix = three_classes()
    cond = mix.conditional_score_fn(SDE)
    for k in range(3):
        x, _ = _run(guidance.classifier_free(cond, k, 0.0), 256, sampler, device=device)
        ref, _ = _run(mix.component(k).score_fn(SDE), 256, sampler, device=device)
        torch.testing.assert_close(x, ref, rtol=1e-10, atol=1e-10)
    x, _ = _run(guidance.classifier_free(cond, 1, -1.0), 256, sampler, device=device)
    ref, _ = _run(mix.score_fn(SDE), 256, sampler, device=device)
    torch.testing.assert_close(x, ref, rtol=1e-10, atol=1e-10)


def test_w0_samples_the_class_and_w_minus_1_the_mixture_with_its_weights():
    """Sliced Wasserstein against exact samples (within 3× the exact-sample floor), and the class weights
    within 4 binomial standard errors."""
    mix, n = three_classes(), 4000
    cond = mix.conditional_score_fn(SDE)
    g = torch.Generator().manual_seed(1)
    for k in range(3):
        x, _ = _run(guidance.classifier_free(cond, k, 0.0), n)
        exact, other = mix.component(k).sample(n, g), mix.component((k + 1) % 3).sample(n, g)
        floor = sliced_wasserstein(mix.component(k).sample(n, g), exact)
        assert sliced_wasserstein(x, exact) < 3 * floor < sliced_wasserstein(x, other)
    x, _ = _run(guidance.classifier_free(cond, 0, -1.0), n)
    exact = mix.sample(n, g)
    assert sliced_wasserstein(x, exact) < 3 * sliced_wasserstein(mix.sample(n, g), exact)
    # each sample's class: the most probable component at t = eps (the classes overlap a little, so compare
    # with the same classification of exact samples, not with the weights themselves)
    t = torch.full((n,), SDE.sampling_eps, dtype=torch.float64)
    share = torch.bincount(mix.class_logits(SDE, x, t).argmax(1), minlength=3) / n
    exact_share = torch.bincount(mix.class_logits(SDE, exact, t).argmax(1), minlength=3) / n
    se = (mix.weights * (1 - mix.weights) / n).sqrt() * math.sqrt(2)
    assert ((share - exact_share).abs() < 4 * se).all(), (share, exact_share)


def test_classifier_guidance_samples_the_class():
    mix, n = three_classes(), 4000
    unconditional = mix.score_fn(SDE)
    x, _ = _run(guidance.classifier_guidance(unconditional, mix.classifier(SDE), 2, 1.0), n)
    g = torch.Generator().manual_seed(2)
    exact = mix.component(2).sample(n, g)
    assert sliced_wasserstein(x, exact) < 3 * sliced_wasserstein(mix.component(2).sample(n, g), exact)


def test_guidance_concentrates_a_narrow_class_and_spreads_a_broad_one():
    """Two classes about the same mean, N(0, 0.25 I) and N(0, 4 I): p(x | narrow)^(1+w) p(x)^(−w) puts more mass
    near 0 as w grows (p(x | narrow)/p(x) falls with |x|), and the broad class moves outwards."""
    eye = torch.eye(2, dtype=torch.float64)
    mix = GaussianMixture([0.5, 0.5], [[0.0, 0.0], [0.0, 0.0]], torch.stack([0.25 * eye, 4 * eye]))
    cond = mix.conditional_score_fn(SDE)
    radius = {k: [] for k in (0, 1)}
    for k in (0, 1):
        for w in (0.0, 1.0, 3.0):
            x, _ = _run(guidance.classifier_free(cond, k, w), 4000, seed=3)
            r = x.norm(dim=1)
            radius[k].append((r.mean().item(), r.std().item() / math.sqrt(len(r))))
    for (m0, s0), (m1, s1) in zip(radius[0], radius[0][1:]):
        assert m1 < m0 - 5 * math.hypot(s0, s1), radius[0]
    for (m0, s0), (m1, s1) in zip(radius[1], radius[1][1:]):
        assert m1 > m0 + 5 * math.hypot(s0, s1), radius[1]
    assert abs(radius[0][0][0] - 0.5 * math.sqrt(math.pi / 2)) < 5 * radius[0][0][1]  # w = 0: Rayleigh mean σ√(π/2)


# -- one network call per step on a doubled batch ---------------------------------------------------------

class Recorder(torch.nn.Module):
    """A class-conditional ε-model that records the batch size and labels of every call."""

    num_classes = 4

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, y=None):
        self.calls.append((x.shape[0], None if y is None else y.clone()))
        return torch.zeros_like(x)


@pytest.mark.parametrize("w, batch", [(2.0, 16), (0.0, 8), (-1.0, 8)])
def test_classifier_free_guidance_is_one_call_per_step(w, batch, device):
    model = Recorder()
    score = scoresde.get_score_fn(model, SDE, "eps")
    guided = guidance.classifier_free(score, 3, w)
    x, nfe = get_sampler("ddim", steps=7, progress=False, denoise=False)(guided, SDE, (8, 2), device=device)
    assert nfe == len(model.calls) >= 6 and all(b == batch for b, _ in model.calls)
    expected = {2.0: [3] * 8 + [4] * 8, 0.0: [3] * 8, -1.0: [4] * 8}[w]
    assert all(y.tolist() == expected for _, y in model.calls)
    assert guided.batch_factor == batch // 8 and guided.continuous is True
    assert guidance.describe_cost(guided) == ("" if batch == 8 else
                                              " (each call on a doubled batch: classifier-free guidance)")


# -- label dropout ------------------------------------------------------------------------------------------

def test_label_dropout_rate_is_p_uncond_within_binomial_error(device):
    n, p = 200_000, 0.15
    y = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(0)).to(device)
    out = drop_labels(y, p, 10, torch.Generator(device=device).manual_seed(1))
    dropped = out == 10
    assert abs(dropped.float().mean().item() - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert torch.equal(out[~dropped], y[~dropped])
    assert torch.equal(drop_labels(y, 0.0, 10), y) and bool((drop_labels(y, 1.0, 10) == 10).all())


def test_training_loss_drops_labels_at_p_uncond():
    """The loss the trainer builds hands the model label K with probability config.loss.p_uncond."""
    from scoresde import builders
    from scoresde.config import default_config

    config = default_config()
    config.model.update(num_classes=4)
    config.loss.p_uncond = 0.2
    model = Recorder()
    loss_fn = builders.build_loss_fn(SDE, config)
    y = torch.arange(4000) % 4
    loss_fn(model, torch.randn(4000, 2), torch.Generator().manual_seed(0), y)
    seen = model.calls[-1][1]
    rate = (seen == 4).float().mean().item()
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 4000)
    assert torch.equal(seen[seen != 4], y[seen != 4])
    config.model.num_classes = 0  # an unconditional model never sees labels
    loss_fn = builders.build_loss_fn(SDE, config)
    loss_fn(model, torch.randn(8, 2), None, y[:8])
    assert model.calls[-1][1] is None


# -- bad input ----------------------------------------------------------------------------------------------

def test_guidance_errors_name_the_argument():
    mix = three_classes()
    cond = mix.conditional_score_fn(SDE)
    with pytest.raises(ValueError, match=r"y must be integers in \{0, …, 2\}, got values in \[3, 3\]"):
        guidance.classifier_free(cond, 3, 1.0)
    with pytest.raises(TypeError, match="y must be an int or a 1-D tensor"):
        guidance.conditional(cond, 1.5)
    with pytest.raises(ValueError, match="w must be finite"):
        guidance.classifier_free(cond, 1, float("nan"))
    with pytest.raises(ValueError, match="the model is unconditional"):
        guidance.conditional(mix.score_fn(SDE), 1)
    with pytest.raises(ValueError, match="has 5 labels for a batch of 4"):
        guidance.conditional(cond, torch.zeros(5, dtype=torch.long))(torch.zeros(4, 2), torch.ones(4))
    with pytest.raises(ValueError, match="classifier must return logits"):
        guidance.classifier_guidance(mix.score_fn(SDE), lambda x, t: x.sum(1), 1)(torch.zeros(4, 2), torch.ones(4))
    with pytest.raises(ValueError, match="guidance w=2 needs class labels"):
        guidance.guided(cond, None, 2)


def test_classifier_loss_is_cross_entropy_on_the_forward_marginal(device):
    """x_t = α_t x_0 + σ_t z with the generator's z, and the loss is −log p(y | x_t, t) of that x_t."""
    from scoresde.losses import ClassifierLoss

    mix = three_classes()
    x0, y = mix.sample(256, torch.Generator().manual_seed(0), device=device, return_labels=True)
    t = torch.rand(256, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).to(device) * 0.9 + 0.05
    loss = ClassifierLoss(SDE)
    x_t, _ = loss.noisy(x0, torch.Generator(device=device).manual_seed(2), t)
    z = torch.randn(x0.shape, generator=torch.Generator(device=device).manual_seed(2), device=device, dtype=x0.dtype)
    alpha, sigma = SDE.marginal_coeffs(t)
    torch.testing.assert_close(x_t, alpha[:, None] * x0 + sigma[:, None] * z, rtol=1e-12, atol=1e-12)
    per_sample = loss.per_sample(mix.classifier(SDE), x0, y, torch.Generator(device=device).manual_seed(2), t)
    expected = -torch.log_softmax(mix.class_logits(SDE, x_t, t), 1).gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(per_sample, expected, rtol=1e-10, atol=1e-10)
    t_drawn = loss.noisy(x0, torch.Generator(device=device).manual_seed(3))[1]
    assert bool(((t_drawn > loss.eps) & (t_drawn <= SDE.T)).all()) and t_drawn.std() > 0.2
