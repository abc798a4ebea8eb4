"""EDM's objective: weighted DSM on identical draws, a loss of exactly 1 per dimension for the exact denoiser of
data with standard deviation σ_d, and its σ densities."""
import math

import pytest
import torch

import scoresde
from scoresde.losses import SIGMA_PRESETS, DSMLoss, EDMLoss

F64 = torch.float64
EPS = torch.finfo(F64).eps
SDES = {"vp": lambda: scoresde.VPSDE(), "subvp": lambda: scoresde.subVPSDE(), "ve": lambda: scoresde.VESDE(),
        "edm": lambda: scoresde.EDMSDE()}


@pytest.mark.parametrize("name", list(SDES))
def test_the_edm_loss_is_weighted_dsm_on_identical_draws(name):
    """D − x₀ = (σ_t²/α_t)(s − ∇log p(x_t | x₀)): λ(σ)‖D − x₀‖² is DSM with weight λ(σ) σ_t⁴/α_t² at t(σ)."""
    sde, g = SDES[name](), torch.Generator().manual_seed(0)
    loss = EDMLoss(sde, sigma_data=0.4)
    x0, z = torch.randn(64, 3, generator=g, dtype=F64) * 0.4, torch.randn(64, 3, generator=g, dtype=F64)
    sigma = loss.sample_sigma(64, g, dtype=F64)
    score = lambda x, t: -x / (1 + t[:, None])  # noqa: E731  any score will do: the identity is algebra
    edm = loss.per_sample(score, x0, sigma=sigma, noise=z)
    t = loss.time_of(sigma)
    dsm = DSMLoss(sde, weighting=loss.dsm_weight).per_sample(score, x0, t=t, noise=z)
    alpha, std = sde.marginal_coeffs(t)
    scale = loss.weight(sigma) * (x0.abs().amax(1) + (alpha[:, None] * x0 + std[:, None] * z).abs().amax(1) / alpha) ** 2
    assert ((edm - dsm).abs() <= 1000 * EPS * scale).all()
    torch.testing.assert_close(sde.marginal_coeffs(t)[1] / sde.marginal_coeffs(t)[0], sigma, rtol=1e-10, atol=0)


@pytest.mark.parametrize("name", list(SDES))
def test_the_exact_denoiser_of_gaussian_data_has_loss_one_per_dimension(name):
    """x₀ ~ N(0, σ_d² I): the posterior variance of x₀ given x_t is c_out(σ)² = 1/λ(σ) per dimension, so the exact
    score's EDM loss has mean exactly 1 at every σ; 40,000 draws of a variance-2 variable: standard error 0.007."""
    sde, g, sigma_data = SDES[name](), torch.Generator().manual_seed(1), 0.5
    loss = EDMLoss(sde, sigma_data=sigma_data)

    def exact(x, t):
        alpha, std = sde.marginal_coeffs(t)
        return -x / (alpha**2 * sigma_data**2 + std**2)[:, None]
    n = 40_000
    x0 = torch.randn(n, 1, generator=g, dtype=F64) * sigma_data
    values = loss.per_sample(exact, x0, generator=g)
    se = (values.std() / n**0.5).item()
    assert abs(values.mean().item() - 1.0) < 5 * se and se < 0.01


def test_sigma_densities_and_presets():
    sde, g = scoresde.EDMSDE(), torch.Generator().manual_seed(2)
    log_sigma = EDMLoss(sde).sample_sigma(100_000, g, dtype=F64).log()
    n = len(log_sigma)  # five standard errors: of the mean, P_std/√n; of the standard deviation, P_std/√(2n)
    assert abs(log_sigma.mean().item() + 1.2) < 5 * 1.2 / n**0.5 and abs(log_sigma.std().item() - 1.2) < 5 * 1.2 / (2 * n) ** 0.5
    assert SIGMA_PRESETS["edm2_512"] == (-0.4, 1.0) and SIGMA_PRESETS["edm2_64"] == (-0.8, 1.6)
    uniform = EDMLoss(sde, density="loguniform").sample_sigma(100_000, g, dtype=F64).log()
    lo, hi = math.log(0.002), math.log(80.0)
    assert uniform.min() >= lo and uniform.max() <= hi and abs(uniform.mean().item() - (lo + hi) / 2) < 0.03
    for kwargs, match in [(dict(P_std=0.0), "P_std"), (dict(sigma_data=-1.0), "sigma_data"),
                          (dict(density="normal"), "density must be one of")]:
        with pytest.raises(ValueError, match=match):
            EDMLoss(sde, **kwargs)


@pytest.mark.parametrize("name", list(SDES))
def test_the_vp_and_ve_baseline_losses_are_l_simple_on_identical_draws(name):
    """λ = 1/σ² (EDM's VP and VE baselines): since D − x₀ = σ(ε − ε̂), 1/σ² ‖D − x₀‖² = ‖ε̂ − ε‖², which is DSM with
    L_simple's weight σ_t² at t(σ)."""
    sde, g = SDES[name](), torch.Generator().manual_seed(4)
    for density in ("vp", "loguniform"):
        loss = EDMLoss(sde, density=density, weight="inverse_square")
        x0, z = torch.randn(64, 3, generator=g, dtype=F64), torch.randn(64, 3, generator=g, dtype=F64)
        sigma = loss.sample_sigma(64, g, dtype=F64)
        score = lambda x, t: -x / (1 + t[:, None])  # noqa: E731
        t = loss.time_of(sigma)
        edm = loss.per_sample(score, x0, sigma=sigma, noise=z)
        simple = DSMLoss(sde, weighting="simple").per_sample(score, x0, t=t, noise=z)
        alpha, std = sde.marginal_coeffs(t)
        eps_hat = -std[:, None] * score(alpha[:, None] * x0 + std[:, None] * z, t)
        # both are ‖ε̂ − ε‖² up to the x₀ round trip, whose cancellation is of terms |x_t|/σ_t in ε
        scale = (x0.abs().amax(1) * alpha / std + z.abs().amax(1) + eps_hat.abs().amax(1)) ** 2
        assert ((edm - simple).abs() <= 1000 * EPS * scale).all()
        assert ((edm - ((eps_hat - z) ** 2).mean(1)).abs() <= 1000 * EPS * scale).all()


def test_the_vp_density_is_uniform_time_on_edms_vp_schedule():
    """density="vp" draws u ~ U(1e-5, 1) and σ = σ_vp(u); on scoresde's VPSDE (β 0.1 → 20) that σ's time is u."""
    sde = scoresde.VPSDE()
    loss = EDMLoss(sde, density="vp", weight="inverse_square", eps=1e-5)  # the SDE's range covers EDM's u range
    sigma = loss.sample_sigma(1000, torch.Generator().manual_seed(5), dtype=F64)
    u = torch.rand(1000, generator=torch.Generator().manual_seed(5), dtype=F64)
    torch.testing.assert_close(loss.time_of(sigma), 1e-5 + (1 - 1e-5) * u, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="weight must be one of"):
        EDMLoss(sde, weight="snr")


def test_the_edm_recipe_is_checked_before_the_first_step():
    from scoresde.config import default_config, validate
    c = default_config()
    c.loss.weighting, c.loss.P_std = "edm", 0.0
    with pytest.raises(ValueError, match=r"config.loss.P_std must be > 0, got 0.0"):
        validate(c)
    c.loss.P_std, c.loss.continuous, c.sde.type = 1.2, False, "vp"
    with pytest.raises(ValueError, match="config.loss.weighting='edm' draws σ itself in continuous time"):
        validate(c)


def test_learned_uncertainty_starts_as_the_edm_loss_and_is_minimised_at_the_log_loss():
    """u(σ) starts at 0, so the first loss is EDM's; L/e^u + u is smallest at u = ln L, where it is 1 + ln L."""
    from scoresde import builders
    from scoresde.config import default_config, validate
    from scoresde.models.uncertainty import WithUncertainty

    c = default_config()
    c.sde.update(type="edm", sigma_min=0.002, sigma_max=80.0)
    c.model.update(parameterization="edm", hidden=32)
    c.loss.weighting = "edm"
    plain = validate(c)
    c = default_config()
    c.sde.update(type="edm", sigma_min=0.002, sigma_max=80.0)
    c.model.update(parameterization="edm", hidden=32, uncertainty=True)
    c.loss.weighting = "edm"
    c = validate(c)
    sde = builders.build_sde(c.sde)
    torch.manual_seed(0)
    model = builders.build_model(c.model, (2,), c.sde)
    assert isinstance(model, WithUncertainty) and model.data_shape == model.net.data_shape
    x0 = torch.randn(128, 2)
    with_u = builders.build_loss_fn(sde, c)(model, x0, torch.Generator().manual_seed(0))
    without = builders.build_loss_fn(sde, plain)(model.net, x0, torch.Generator().manual_seed(0))
    assert torch.equal(with_u, without)
    with_u.backward()
    assert model.logvar.weight.grad.abs().sum() > 0  # u is trained through the loss
    L = torch.tensor([0.3, 1.0, 4.0], dtype=F64)
    u = L.log().requires_grad_(True)
    value = EDMLoss.with_uncertainty(L, u)
    (grad,) = torch.autograd.grad(value.sum(), u)
    torch.testing.assert_close(grad, torch.zeros_like(L), rtol=0, atol=10 * EPS)
    torch.testing.assert_close(value.detach(), 1 + L.log(), rtol=0, atol=10 * EPS)
    assert (EDMLoss.with_uncertainty(L, u.detach() + 0.1) > value.detach()).all()
    c = default_config()
    c.model.uncertainty = True
    with pytest.raises(ValueError, match="config.model.uncertainty=True .* needs config.loss.weighting='edm'"):
        validate(c)


@pytest.mark.slow
@pytest.mark.parametrize("uncertainty", [False, True])
def test_a_toy_run_trains_with_edms_recipe_and_samples(tmp_path, uncertainty):
    """EDM's process, preconditioning and objective together, from the config (with EDM2's u(σ) too)."""
    from scoresde.config import apply_overrides, load_config
    from scoresde.training import Trainer
    config = apply_overrides(load_config("configs/vp/toy.py"), [
        "--config.sde.type=edm", "--config.sde.sigma_min=0.002", "--config.sde.sigma_max=80.0",
        "--config.model.parameterization=edm", "--config.loss.weighting=edm", "--config.model.hidden=32",
        "--config.training.n_iters=30", "--config.training.device=cpu", "--config.data.n_eval=64",
        "--config.sampling.name=edm", "--config.sampling.steps=5", f"--config.model.uncertainty={uncertainty}"])
    Trainer(config, tmp_path / "run", progress_bar=False).train()
    run = scoresde.load_run(tmp_path / "run", device="cpu")
    x, nfe = run.sample(32, "edm", steps=8, preset="imagenet64")
    assert isinstance(run.sde, scoresde.EDMSDE) and x.shape == (32, 2) and torch.isfinite(x).all()
    assert run.eval_loss() > 0


def test_edm_preconditioning_refuses_networks_that_condition_themselves():
    from scoresde.config import default_config, validate
    for name in ("ncsnpp", "diffusers"):
        c = default_config()
        c.model.update(name=name, parameterization="edm")
        with pytest.raises(ValueError, match=rf"config.model.parameterization='edm' feeds .* config.model.name='{name}'"):
            validate(c)
    c = default_config()
    c.model.sigma_data_from_data = True
    with pytest.raises(ValueError, match="config.model.sigma_data_from_data=True .* needs config.model.parameterization"):
        validate(c)


@pytest.mark.slow
def test_sigma_data_is_measured_from_the_data_and_kept_on_resume(tmp_path):
    """σ_d from the data is √E[x₀²] of the first 1000 training samples, saved in config.json; a resumed run reads
    the same value, so the resume check passes."""
    from scoresde import builders
    from scoresde.config import apply_overrides, from_json, load_config
    from scoresde.training import Trainer
    overrides = ["--config.sde.type=edm", "--config.sde.sigma_min=0.002", "--config.sde.sigma_max=80.0",
                 "--config.model.parameterization=edm", "--config.model.sigma_data_from_data=True",
                 "--config.loss.weighting=edm", "--config.model.hidden=32", "--config.training.device=cpu",
                 "--config.data.n_eval=64", "--config.sampling.name=edm", "--config.sampling.steps=3"]
    config = apply_overrides(load_config("configs/vp/toy.py"), overrides + ["--config.training.n_iters=3"])
    trainer = Trainer(config, tmp_path / "run", progress_bar=False)
    x, _ = trainer.data.train_batch(0, 1000, config.training.seed)
    expected = round(float(x.double().pow(2).mean().sqrt()), 4)
    assert trainer.config.model.sigma_data == expected == builders.estimate_sigma_data(trainer.data, 42)
    assert expected != 0.5  # the checkerboard is not EDM's default
    trainer.train()
    assert from_json((tmp_path / "run" / "config.json").read_text()).model.sigma_data == expected
    config = apply_overrides(load_config("configs/vp/toy.py"), overrides + ["--config.training.n_iters=5"])
    Trainer(config, tmp_path / "run", progress_bar=False).train()
    assert scoresde.load_run(tmp_path / "run", "cpu").config.model.sigma_data == expected
