"""Autoguidance (Karras et al. 2024b): (1 + w) s − w s_bad against the closed-form guided denoiser of a Gaussian
mixture guided by the exact denoiser of a blurred copy of it, and the wiring through Run.sample and the CLI."""
import numpy as np
import pytest
import torch

import scoresde
from scoresde import guidance
from scoresde.analytic import GaussianMixture
from scoresde.score import Score
from tolerance import ulps

MEANS = [[-1.5, 0.3], [1.0, -0.5], [0.2, 1.7]]
WEIGHTS = [0.2, 0.5, 0.3]
COVS = torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.4]], [[0.25, -0.05], [-0.05, 0.15]]],
                    dtype=torch.float64)
BLUR = 0.35  # the weak model's components are wider by BLUR² I


def posterior_mean(x, alpha, sigma, weights, means, covs):
    """E[x₀ | x_t = x] of Σ w_k N(μ_k, Σ_k) under x_t = α x₀ + σ ε, from each component's Gaussian posterior
    μ_k + α Σ_k C_k⁻¹ (x − α μ_k), C_k = α² Σ_k + σ² I, weighted by Bayes' rule: written here from the formulas,
    not from scoresde.analytic."""
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    logs, means_k = [], []
    for w, mu, cov in zip(weights, torch.tensor(means, dtype=x.dtype), covs):
        C = alpha**2 * cov + sigma**2 * eye
        dist = torch.distributions.MultivariateNormal(alpha * mu, covariance_matrix=C)
        logs.append(torch.log(torch.tensor(w, dtype=x.dtype)) + dist.log_prob(x))
        means_k.append(mu + torch.linalg.solve(C, (x - alpha * mu).T).T @ (alpha * cov))
    r = torch.softmax(torch.stack(logs, 1), 1)
    return (r[..., None] * torch.stack(means_k, 1)).sum(1)


@pytest.mark.parametrize("sde,ts", [(scoresde.VPSDE(), (0.02, 0.1, 0.3, 1.0)),
                                    (scoresde.EDMSDE(), (0.1, 0.5, 2.0, 80.0))], ids=["vp", "edm"])
@pytest.mark.parametrize("w", [-0.5, 1.0, 2.5])
def test_autoguided_field_is_the_guided_denoiser_in_closed_form(sde, ts, w):
    """D_w = D_bad + (1 + w)(D − D_bad) (EDM2's Eq. 1 with its w = 1 + w) at every t, on VP and on EDM's process."""
    good = GaussianMixture(WEIGHTS, MEANS, COVS)
    blurred = COVS + BLUR**2 * torch.eye(2, dtype=torch.float64)
    bad = GaussianMixture(WEIGHTS, MEANS, blurred)
    score = guidance.autoguided(good.score_fn(sde), bad.score_fn(sde), w)
    assert score.autoguided and "weaker model" in guidance.describe_cost(score)
    x = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2
    gap = 0.0
    for t in ts:
        tt = torch.full((64,), t, dtype=torch.float64)
        alpha, sigma = (v[0].item() for v in sde.marginal_coeffs(tt))
        d_good = posterior_mean(x, alpha, sigma, WEIGHTS, MEANS, COVS)
        d_bad = posterior_mean(x, alpha, sigma, WEIGHTS, MEANS, blurred)
        expected = d_bad + (1 + w) * (d_good - d_bad)
        denoised = (x + sigma**2 * score(x, tt)) / alpha  # Tweedie: the guided score's denoiser
        # a 2×2 solve and a softmax per component, then (x + σ² s)/α: ~100 roundings of the largest term
        scale = max(x.abs().max().item(), sigma**2 * score(x, tt).abs().max().item()) / alpha
        torch.testing.assert_close(denoised, expected, rtol=0, atol=ulps(200, scale))
        gap = max(gap, (d_good - d_bad).abs().max().item())
    assert gap > 1e-2  # the guidance is not a no-op: the weak model's denoiser differs from the good one's


def test_zero_weight_is_the_model_alone_and_conventions_must_match():
    good = GaussianMixture(WEIGHTS, MEANS, COVS).score_fn(scoresde.VPSDE())
    assert guidance.autoguided(good, good, 0.0) is good
    with pytest.raises(ValueError, match="time convention"):
        guidance.autoguided(good, Score(good.fn, continuous=False), 1.0)
    with pytest.raises(ValueError, match="w"):
        guidance.autoguided(good, good, float("nan"))


def test_learned_variance_is_the_good_models():
    x, t = torch.randn(4, 2, dtype=torch.float64), torch.full((4,), 0.5, dtype=torch.float64)
    good = Score(lambda x, t: (-x, torch.ones_like(x)), learned_variance=True)
    bad = Score(lambda x, t: (-2 * x, torch.zeros_like(x)), learned_variance=True)
    s, v = guidance.autoguided(good, bad, 1.0).outputs(x, t)
    torch.testing.assert_close(s, torch.zeros_like(x))  # (1 + 1)(−x) − 1·(−2x) = 0
    assert torch.equal(v, torch.ones_like(x))


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    from test_training import TINY, ROOT
    from scoresde.cli import main
    work = tmp_path_factory.mktemp("autoguide") / "run"
    main(["train", "--config", str(ROOT / "configs/vp/toy.py"), "--workdir", str(work), "--no-progress", *TINY])
    return work


@pytest.mark.slow
def test_run_sample_with_autoguide_runs_the_autoguided_score(toy_run):
    """Run.sample(autoguide=weak, guidance=w) is the sampler on autoguided(run, weak, w), seed for seed."""
    run = scoresde.load_run(toy_run, "cpu")
    weak = scoresde.load_run(toy_run, "cpu", checkpoint=20)
    assert weak.step == 20 and run.step == 30
    x, nfe = run.sample(50, "ddim", steps=6, seed=3, autoguide=weak, guidance=1.5)
    sampler = run.sampler("ddim", 6)
    expected, _ = sampler(guidance.autoguided(run.score_fn, weak.score_fn, 1.5), run.sde, (50, 2),
                          generator=torch.Generator().manual_seed(3), device=run.device)
    assert torch.equal(x, expected) and nfe == 6
    plain, _ = run.sample(50, "ddim", steps=6, seed=3)
    assert not torch.allclose(plain, x)  # the weak model changed the samples
    assert torch.equal(run.sample(50, "ddim", steps=6, seed=3, autoguide=weak, guidance=0)[0], plain)
    with pytest.raises(TypeError, match="autoguide must be a Run"):
        run.sample(4, "ddim", steps=2, autoguide=weak.score_fn, guidance=1)


@pytest.mark.slow
def test_autoguide_refuses_a_weak_run_of_another_process(toy_run, tmp_path):
    from test_training import tiny_config
    from scoresde.training import Trainer
    config = tiny_config(n_iters=5, eval_every=100, sample_every=100)
    config.sde.type = "subvp"
    Trainer(config, str(tmp_path / "subvp"), progress_bar=False).train()
    run, other = scoresde.load_run(toy_run, "cpu"), scoresde.load_run(tmp_path / "subvp", "cpu")
    with pytest.raises(ValueError, match=r"same data and process: its SDE \(config.sde\)"):
        run.sample(4, "ddim", steps=2, autoguide=other, guidance=1)


@pytest.mark.slow
def test_cli_autoguide_writes_a_grid_over_w_and_explains_its_flags(toy_run, capsys):
    from test_cli import assert_one_line_error, cli
    out = cli(capsys, "sample", "--workdir", toy_run, "--sampler", "ddim", "--steps", "4", "--n", "20",
              "--autoguide", toy_run, "--autoguide-checkpoint", "20", "--guidance", "0,1")
    assert out.returncode == 0, out.stderr
    assert "2 guidance scales x 20 samples" in out.stdout and "plus one call of the weaker model" in out.stdout
    data = np.load(toy_run / "samples" / "ddim_4_grid.npz")
    assert data["samples"].shape == (1, 2, 20, 2) and list(data["guidance"]) == [0, 1]
    out = cli(capsys, "sample", "--workdir", toy_run, "--steps", "2", "--n", "4", "--guidance", "1")
    assert_one_line_error(out, "--guidance", "--autoguide")
    out = cli(capsys, "sample", "--workdir", toy_run, "--steps", "2", "--n", "4", "--autoguide-checkpoint", "20")
    assert_one_line_error(out, "--autoguide-checkpoint", "give --autoguide WORKDIR too")
