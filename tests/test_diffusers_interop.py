"""A random diffusers UNet2DModel under scoresde: schedules, time mapping, prediction types, DDIM against diffusers."""
import subprocess
import sys

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

import scoresde  # noqa: E402
from scoresde.diffusers_interop import (  # noqa: E402
    diffusers_scheduler_config, score_fn_from_diffusers, sde_from_diffusers, ts_from_diffusers_timesteps)
from scoresde.sampling import get_sampler  # noqa: E402

F64 = torch.float64
SHAPE = (2, 2, 8, 8)  # batch, channels, height, width
PREDICTION_TYPES = ["epsilon", "sample", "v_prediction"]
# Schedules diffusers' DDPMScheduler offers, each with its own num_train_timesteps and ends.
SCHEDULES = {
    "linear": dict(beta_schedule="linear"),
    "linear_500": dict(beta_schedule="linear", num_train_timesteps=500, beta_start=2e-4, beta_end=0.03),
    "scaled_linear": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
    "squaredcos_cap_v2": dict(beta_schedule="squaredcos_cap_v2"),
    "sigmoid": dict(beta_schedule="sigmoid", num_train_timesteps=200),
    "trained_betas": dict(trained_betas=torch.linspace(1e-3, 0.05, 100).tolist(), num_train_timesteps=100),
}


def make_unet(dtype=torch.float32, device="cpu", **overrides):
    """A small random UNet2DModel with one attention level; fixed seed."""
    torch.manual_seed(0)
    config = dict(sample_size=8, in_channels=2, out_channels=2, block_out_channels=(16, 32), layers_per_block=1,
                  norm_num_groups=4, attention_head_dim=8, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                  up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    unet = diffusers.UNet2DModel(**{**config, **overrides}).eval()
    return (unet.double() if dtype == F64 else unet).to(device)


def diffusers_ddim(unet, scheduler, x):
    """diffusers' own DDIM loop (η = 0)."""
    for tau in scheduler.timesteps:
        x = scheduler.step(unet(x, tau).sample, tau, x).prev_sample
    return x


# -- schedules ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SCHEDULES))
def test_sde_betas_are_the_schedulers(name):
    """float64 betas equal diffusers' float32 betas to float32 rounding; ᾱ_i is their float64 cumulative product."""
    scheduler = diffusers.DDPMScheduler(**SCHEDULES[name])
    sde = sde_from_diffusers(scheduler)
    theirs = scheduler.betas.double()
    assert sde.N == len(theirs)
    assert torch.allclose(sde.discrete_betas, theirs, rtol=3e-7, atol=0)  # measured at most 2.2e-7 (scaled_linear)
    # Where β_i ≈ 0.999 (cosine tail) 1 − β_i carries the float32 rounding of β_i relatively 1e3 times larger.
    assert torch.allclose(sde.alphas_cumprod, torch.cumprod(1 - theirs, 0), rtol=2e-5, atol=0)
    assert torch.allclose(sde.alphas_cumprod, scheduler.alphas_cumprod.double(), rtol=2e-5, atol=0)


@pytest.mark.parametrize("sde", [scoresde.VPSDE(), scoresde.VPSDE(beta_min=0.2, beta_max=15, N=500),
                                 scoresde.VPSDE(schedule="cosine"),
                                 sde_from_diffusers(SCHEDULES["scaled_linear"])], ids=["linear", "linear_500",
                                                                                        "cosine", "scaled_linear"])
def test_exported_config_round_trips(sde):
    config = diffusers_scheduler_config(sde, prediction_type="v_prediction")
    scheduler = diffusers.DDPMScheduler.from_config(config)
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.clip_sample is False
    assert torch.allclose(scheduler.betas.double(), sde.discrete_betas, rtol=3e-7, atol=0)
    assert torch.allclose(sde_from_diffusers(config).discrete_betas, sde.discrete_betas, rtol=1e-14, atol=0)


def test_cosine_vpsde_differs_from_squaredcos_cap_v2_only_in_its_last_beta():
    """Why the cosine VPSDE is exported as trained_betas: it clips β(t), not β_N, so β_N = 0.98866, not 0.999."""
    ours = scoresde.VPSDE(schedule="cosine").discrete_betas
    theirs = diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2").betas.double()
    assert torch.allclose(ours[:-1], theirs[:-1], rtol=1.5e-7, atol=0)
    assert ours[-1].item() == pytest.approx(0.988655, abs=1e-6) and theirs[-1].item() == pytest.approx(0.999)
    assert diffusers_scheduler_config(scoresde.VPSDE(schedule="cosine"))["trained_betas"][-1] == ours[-1].item()


# -- the score function ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_score_is_diffusers_epsilon_at_the_same_timestep(prediction_type, device):
    """At t_i = iT/N the UNet sees timestep i − 1; score = −ε̂/√(1 − ᾱ), ε̂ by diffusers' own formula."""
    scheduler = diffusers.DDIMScheduler(prediction_type=prediction_type)
    unet, sde = make_unet(F64, device), sde_from_diffusers(scheduler)
    score_fn = score_fn_from_diffusers(unet, scheduler)
    x = torch.randn(*SHAPE, dtype=F64, device=device)
    for tau in (0, 411, 999):
        t = torch.full((SHAPE[0],), (tau + 1) / 1000, dtype=F64, device=device)
        out, abar = unet(x, tau).sample, sde.alphas_cumprod[tau].item()
        eps = {"epsilon": out, "sample": (x - abar**0.5 * out) / (1 - abar) ** 0.5,
               "v_prediction": abar**0.5 * out + (1 - abar) ** 0.5 * x}[prediction_type]  # DDIMScheduler.step
        with torch.no_grad():
            assert torch.allclose(score_fn(x, t), -eps / (1 - abar) ** 0.5, rtol=1e-10, atol=1e-10)


def test_score_follows_the_unets_dtype_at_call_time():
    """x is fed in the UNet's dtype of the moment (a UNet converted after wrapping works); the score is in x's."""
    unet = make_unet(torch.float32)
    score_fn = score_fn_from_diffusers(unet, {})
    x, t = torch.randn(*SHAPE, dtype=F64), torch.full((SHAPE[0],), 0.5, dtype=F64)
    sigma = (1 - scoresde.VPSDE().alphas_cumprod[499]).sqrt().item()
    with torch.no_grad():
        s32 = score_fn(x, t)
        assert s32.dtype == F64
        assert torch.allclose(s32, -unet(x.float(), 499).sample.double() / sigma, rtol=1e-14, atol=0)
        unet.double()
        assert torch.allclose(score_fn(x, t), s32, rtol=1e-4, atol=1e-5)


def test_learned_variance_channels_are_dropped():
    unet = make_unet(F64, out_channels=4)
    x, t = torch.randn(*SHAPE, dtype=F64), torch.full((SHAPE[0],), 0.5, dtype=F64)
    score_fn = score_fn_from_diffusers(unet, {"variance_type": "learned_range"})
    abar = scoresde.VPSDE().alphas_cumprod[499].item()
    with torch.no_grad():
        assert torch.allclose(score_fn(x, t), -unet(x, 499).sample[:, :2] / (1 - abar) ** 0.5, rtol=1e-12)
        with pytest.raises(ValueError, match="variance_type 'learned' or 'learned_range'"):
            score_fn_from_diffusers(unet, {})(x, t)


def test_class_labels_reach_the_unet(device):
    unet = make_unet(F64, device, num_class_embeds=3)
    x, t = torch.randn(*SHAPE, dtype=F64, device=device), torch.full((SHAPE[0],), 0.5, dtype=F64, device=device)
    with torch.no_grad():
        s0 = score_fn_from_diffusers(unet, {}, class_labels=0)(x, t)
        s1 = score_fn_from_diffusers(unet, {}, class_labels=torch.tensor([1, 1]))(x, t)
        abar = scoresde.VPSDE().alphas_cumprod[499].item()
        expected = -unet(x, 499, class_labels=torch.tensor([1, 1], device=device)).sample / (1 - abar) ** 0.5
        assert torch.allclose(s1, expected, rtol=1e-12) and not torch.allclose(s0, s1)
        with pytest.raises(ValueError, match=r"class_labels must be an int or have shape \[B\] = \[2\]"):
            score_fn_from_diffusers(unet, {}, class_labels=torch.tensor([0, 1, 2]))(x, t)
    with pytest.raises(ValueError, match="has a class embedding: pass class_labels"):
        score_fn_from_diffusers(unet, {})
    with pytest.raises(ValueError, match="no class embedding"):
        score_fn_from_diffusers(make_unet(F64), {}, class_labels=0)


# -- sampling -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("steps", [10, 50])
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
def test_ddim_on_diffusers_timesteps_is_diffusers_ddim(prediction_type, spacing, steps, dtype, device):
    """scoresde's DDIM (η = 0, Tweedie last step) on ts_from_diffusers_timesteps = diffusers' DDIMScheduler loop.

    diffusers' last step goes to ᾱ = 1 (set_alpha_to_one), so it returns x̂_0: scoresde's Tweedie step.
    In float64, diffusers is given scoresde's ᾱ table (its own is float32) so only the algorithms are compared.
    """
    scheduler = diffusers.DDIMScheduler(prediction_type=prediction_type, timestep_spacing=spacing,
                                        steps_offset=int(spacing == "leading"), clip_sample=False)
    scheduler.set_timesteps(steps)
    sde, unet = sde_from_diffusers(scheduler), make_unet(dtype, device)
    if dtype == F64:
        scheduler.alphas_cumprod, scheduler.final_alpha_cumprod = sde.alphas_cumprod, torch.tensor(1.0, dtype=F64)
    sampler = get_sampler("ddim", ts=ts_from_diffusers_timesteps(scheduler.timesteps, sde), progress=False,
                          return_trajectory=True)
    generator = torch.Generator(device=device).manual_seed(0)
    x, nfe, traj = sampler(score_fn_from_diffusers(unet, scheduler), sde, SHAPE, generator=generator,
                           device=device, dtype=dtype)
    with torch.no_grad():
        expected = diffusers_ddim(unet, scheduler, traj[0])
    assert nfe == steps == len(scheduler.timesteps)
    assert x.dtype == dtype and x.device.type == torch.device(device).type
    rel = ((x - expected).abs().max() / expected.abs().max()).item()
    # float32: measured at most 1.1e-5 (sample, leading, 50 steps), set by diffusers' float32 ᾱ table: a float64 run
    # on that table differs by 1.7e-5. float64 on one table: at most 5e-15.
    assert rel < (3e-5 if dtype == torch.float32 else 1e-13), rel


def test_ddim_without_alpha_to_one_ends_at_the_first_ddpm_step():
    """set_alpha_to_one=False: diffusers' last step goes to ᾱ_0, so scoresde appends t = T/N and skips Tweedie."""
    scheduler = diffusers.DDIMScheduler(timestep_spacing="trailing", set_alpha_to_one=False, clip_sample=False)
    scheduler.set_timesteps(10)
    sde, unet = sde_from_diffusers(scheduler), make_unet(F64)
    assert scheduler.final_alpha_cumprod == scheduler.alphas_cumprod[0]  # what set_alpha_to_one=False means
    scheduler.alphas_cumprod, scheduler.final_alpha_cumprod = sde.alphas_cumprod, sde.alphas_cumprod[0]
    ts = torch.cat([ts_from_diffusers_timesteps(scheduler.timesteps, sde), torch.tensor([1e-3], dtype=F64)])
    sampler = get_sampler("ddim", ts=ts, denoise=False, progress=False, return_trajectory=True)
    x, nfe, traj = sampler(score_fn_from_diffusers(unet, scheduler), sde, SHAPE, generator=torch.Generator(), dtype=F64)
    with torch.no_grad():
        expected = diffusers_ddim(unet, scheduler, traj[0])
    assert nfe == 10 and torch.allclose(x, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, options, expected_nfe", [
    ("ancestral", dict(steps=10), 10),  # 9 moves + Tweedie
    ("dpm_solver", dict(steps=10, eps=1e-3), 10),  # eps given: the budget rule would end at a later step
    ("ode:heun", dict(steps=10), 19),  # 2 per move + Tweedie
    ("pc", dict(steps=5), 10),  # predictor + corrector per move, the last corrector at eps, + Tweedie
])
def test_other_samplers_run_on_the_wrapped_unet(name, options, expected_nfe, device):
    scheduler = diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    seen = []
    unet = make_unet(torch.float32, device)
    unet.register_forward_pre_hook(lambda module, args: seen.append(args[1]))
    x, nfe = get_sampler(name, progress=False, **options)(score_fn_from_diffusers(unet, scheduler),
                                                          sde_from_diffusers(scheduler), SHAPE,
                                                          generator=torch.Generator(device=device).manual_seed(0),
                                                          device=device)
    assert x.shape == SHAPE and bool(torch.isfinite(x).all()) and nfe == expected_nfe == len(seen)
    assert seen[0].tolist() == [999, 999] and seen[-1].tolist() == [0, 0]  # from T to eps = T/N


def test_ts_from_diffusers_timesteps():
    sde = scoresde.VPSDE()
    assert torch.equal(ts_from_diffusers_timesteps(torch.tensor([999, 499, 0]), sde),
                       torch.tensor([1.0, 0.5, 0.001], dtype=F64))
    assert torch.equal(sde.timestep(ts_from_diffusers_timesteps(torch.arange(1000), sde)), torch.arange(1000))
    for bad in ([1000], [-1], [3.5], [[1, 2]]):
        with pytest.raises(ValueError, match=r"timesteps must be a 1-D sequence of integers in \[0, N - 1\]"):
            ts_from_diffusers_timesteps(bad, sde)


# -- errors and packaging -------------------------------------------------------------------------------------------

def test_bad_inputs_raise_with_the_key_and_the_choices():
    unet = make_unet()
    with pytest.raises(ValueError, match=r"prediction_type must be one of \['epsilon', 'sample', 'v_prediction'\], "
                                         r"got 'flow'"):
        score_fn_from_diffusers(unet, {"prediction_type": "flow"})
    with pytest.raises(ValueError, match=r"prediction_type must be one of .*got 'eps'"):
        diffusers_scheduler_config(scoresde.VPSDE(), prediction_type="eps")
    with pytest.raises(ValueError, match=r"beta_schedule must be one of \['linear', 'scaled_linear', 'sigmoid', "
                                         r"'squaredcos_cap_v2'\], got 'laplace'"):
        sde_from_diffusers({"beta_schedule": "laplace"})
    with pytest.raises(ValueError, match=r"variance_type must be one of .*got 'fixed'"):
        score_fn_from_diffusers(unet, {"variance_type": "fixed"})
    with pytest.raises(ValueError, match="rescale_betas_zero_snr=True .* accepted: rescale_betas_zero_snr=False"):
        sde_from_diffusers({"rescale_betas_zero_snr": True})
    with pytest.raises(ValueError, match="trained_betas holds 2 betas but num_train_timesteps=1000"):
        sde_from_diffusers({"trained_betas": [0.1, 0.2]})
    with pytest.raises(TypeError, match="scheduler_config must be a diffusers scheduler, its .config or a dict"):
        sde_from_diffusers("linear")
    for sde in (scoresde.subVPSDE(), scoresde.VESDE()):
        with pytest.raises(ValueError, match=f"only a VPSDE has DDPM betas to export, got {type(sde).__name__}"):
            diffusers_scheduler_config(sde)
    with pytest.raises(ValueError, match="continuous=False needs an SDE with discrete DDPM betas"):
        score_fn_from_diffusers(unet, scoresde.VESDE())


@pytest.mark.slow  # starts a Python process
def test_import_scoresde_does_not_import_diffusers():
    code = "import sys, scoresde, scoresde.diffusers_interop; assert 'diffusers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
