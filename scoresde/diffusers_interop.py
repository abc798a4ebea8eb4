"""A diffusers `UNet2DModel` and its `DDPMScheduler` config as a scoresde VPSDE and score function.

    sde = sde_from_diffusers(scheduler.config)              # DDPM betas → VPSDE with the same ᾱ_i
    score_fn = score_fn_from_diffusers(unet, scheduler.config)
    x, nfe = get_sampler("dpm_solver", steps=20)(score_fn, sde, (4, 3, 32, 32))

Time: diffusers' timestep τ ∈ {0…N−1} indexes ᾱ_τ, which is DDPM's step i = τ + 1 at t = (τ + 1)T/N,
the time at which scoresde hands a discrete network the same index τ (`SDE.timestep`).
Honoured config keys: num_train_timesteps, beta_schedule, beta_start, beta_end, trained_betas,
prediction_type, variance_type (learned variances are dropped: only the mean prediction enters the score).
Ignored, because they change a sampler and not the score: clip_sample, clip_sample_range, thresholding,
dynamic_thresholding_ratio, sample_max_value, timestep_spacing, steps_offset, set_alpha_to_one.
scoresde samplers never clip x̂₀. Missing keys take DDPMScheduler's defaults. diffusers itself is not imported.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from ._utils import check_positive_int, choice_error
from .parameterization import get_score_fn
from .schedules import DiscreteSchedule, LinearSchedule
from .sde import SDE, VPSDE

F64 = torch.float64

# diffusers prediction_type -> scoresde parameterisation (Ho et al. 2020 ε; x₀; Salimans & Ho 2022 v).
PREDICTION_TYPES = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
# Variance types whose extra output channels hold a learned variance (Nichol & Dhariwal 2021).
VARIANCE_TYPES = {"fixed_small": False, "fixed_small_log": False, "fixed_large": False, "fixed_large_log": False,
                  "learned": True, "learned_range": True}
DDPM_DEFAULTS = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                     trained_betas=None, prediction_type="epsilon", variance_type="fixed_small",
                     rescale_betas_zero_snr=False)


def _glide_cosine(N: int) -> torch.Tensor:
    """Glide's betas: min(1 − ᾱ(i/N)/ᾱ((i−1)/N), 0.999), ᾱ(t) = cos²((t + 0.008)/1.008 · π/2) (Nichol & Dhariwal)."""
    abar = torch.cos((torch.arange(N + 1, dtype=F64) / N + 0.008) / 1.008 * (math.pi / 2)) ** 2
    return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)


# beta_schedule -> the schedule of diffusers' DDPM betas (computed here in float64, there in float32).
BETA_SCHEDULES = {
    "linear": lambda c, N: LinearSchedule(c["beta_start"] * N, c["beta_end"] * N),  # β_i = linspace(start, end, N)
    "scaled_linear": lambda c, N: DiscreteSchedule(
        torch.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, N, dtype=F64) ** 2),
    "squaredcos_cap_v2": lambda c, N: DiscreteSchedule(_glide_cosine(N)),
    "sigmoid": lambda c, N: DiscreteSchedule(
        torch.sigmoid(torch.linspace(-6, 6, N, dtype=F64)) * (c["beta_end"] - c["beta_start"]) + c["beta_start"]),
}


def scheduler_dict(scheduler_config) -> dict:
    """A diffusers scheduler, its `.config` or a plain dict, as a dict with DDPMScheduler's defaults filled in."""
    config = getattr(scheduler_config, "config", scheduler_config)
    if not isinstance(config, Mapping):
        raise TypeError("scheduler_config must be a diffusers scheduler, its .config or a dict, "
                        f"got {type(scheduler_config).__name__}")
    return {**DDPM_DEFAULTS, **config}


def sde_from_diffusers(scheduler_config) -> VPSDE:
    """The VPSDE with the scheduler's DDPM betas: closed-form linear β(t) for "linear", else a `DiscreteSchedule`."""
    c = scheduler_dict(scheduler_config)
    N = check_positive_int(c["num_train_timesteps"], "num_train_timesteps")
    if c["rescale_betas_zero_snr"]:
        raise ValueError("rescale_betas_zero_snr=True gives ᾱ_N = 0 (zero terminal SNR), which a VPSDE cannot "
                         "represent; accepted: rescale_betas_zero_snr=False")
    if c["trained_betas"] is not None:
        if len(c["trained_betas"]) != N:
            raise ValueError(f"trained_betas holds {len(c['trained_betas'])} betas but num_train_timesteps={N}")
        return VPSDE(N=N, schedule=DiscreteSchedule(c["trained_betas"]))
    name = c["beta_schedule"]
    if name not in BETA_SCHEDULES:
        raise choice_error("beta_schedule", name, BETA_SCHEDULES)
    return VPSDE(N=N, schedule=BETA_SCHEDULES[name](c, N))


def score_fn_from_diffusers(unet, scheduler_config, prediction_type: str | None = None, class_labels=None):
    """Wrap `unet(x, timestep).sample` into scoresde's `score_fn(x, t)`, for every scoresde sampler.

    scheduler_config: a diffusers scheduler, its config or a dict (see `sde_from_diffusers`), or a VPSDE.
    prediction_type: "epsilon", "sample" or "v_prediction"; default the config's ("epsilon" with a VPSDE).
    class_labels: an int or a LongTensor [B], required exactly when the UNet has a class embedding.
    The network receives x in its own dtype and the index τ = round(tN/T) − 1 on x's device; the score
    comes back in x's dtype, converted with DDPM's discrete ᾱ_τ.
    """
    if isinstance(scheduler_config, SDE):
        sde, c = scheduler_config, dict(DDPM_DEFAULTS)
    else:
        c = scheduler_dict(scheduler_config)
        sde = sde_from_diffusers(c)
    prediction_type = c["prediction_type"] if prediction_type is None else prediction_type
    if prediction_type not in PREDICTION_TYPES:
        raise choice_error("prediction_type", prediction_type, PREDICTION_TYPES)
    if c["variance_type"] not in VARIANCE_TYPES:
        raise choice_error("variance_type", c["variance_type"], VARIANCE_TYPES)
    learned_variance = VARIANCE_TYPES[c["variance_type"]]
    conditional = getattr(unet, "class_embedding", None) is not None
    if conditional != (class_labels is not None):
        raise ValueError("this UNet has a class embedding: pass class_labels (an int or a LongTensor [B])"
                         if conditional else "class_labels were given but this UNet has no class embedding")

    def model(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        labels = None if class_labels is None else _labels(class_labels, x)
        out = unet(x.to(getattr(unet, "dtype", x.dtype)), timestep, class_labels=labels).sample  # its dtype now
        if learned_variance:
            out = out[:, : x.shape[1]]  # [mean prediction, variance interpolation], as diffusers splits it
        if out.shape != x.shape:
            raise ValueError(f"the UNet returned shape {tuple(out.shape)} for x of shape {tuple(x.shape)}; a UNet "
                             "that also predicts its variance needs variance_type 'learned' or 'learned_range'")
        return out.to(x.dtype)

    return get_score_fn(model, sde, parameterization=PREDICTION_TYPES[prediction_type], continuous=False)


def _labels(class_labels, x: torch.Tensor) -> torch.Tensor:
    labels = torch.as_tensor(class_labels, device=x.device)
    if labels.ndim == 0:
        return labels.expand(x.shape[0])
    if labels.shape != (x.shape[0],):
        raise ValueError(f"class_labels must be an int or have shape [B] = [{x.shape[0]}], got {tuple(labels.shape)}")
    return labels


def diffusers_scheduler_config(sde: VPSDE, prediction_type: str = "epsilon") -> dict:
    """A DDPMScheduler config with the VPSDE's DDPM betas: "linear" for a linear β(t), else trained_betas.

    clip_sample is False because scoresde samplers do not clip x̂₀.
    """
    if not isinstance(sde, VPSDE):
        raise ValueError(f"only a VPSDE has DDPM betas to export, got {type(sde).__name__}")
    if prediction_type not in PREDICTION_TYPES:
        raise choice_error("prediction_type", prediction_type, PREDICTION_TYPES)
    config = dict(num_train_timesteps=sde.N, prediction_type=prediction_type, clip_sample=False)
    if isinstance(sde.schedule, LinearSchedule):
        return {**config, "beta_schedule": "linear", "beta_start": sde.schedule.beta_min / sde.N,
                "beta_end": sde.schedule.beta_max / sde.N}
    # Cosine included: scoresde clips β(t) in continuous time, so its last β_N is 0.98866, not 0.999.
    return {**config, "trained_betas": sde.discrete_betas.tolist()}


def ts_from_diffusers_timesteps(timesteps, sde: SDE) -> torch.Tensor:
    """scoresde times t = (τ + 1)T/N of diffusers' timesteps τ, float64: pass them as a sampler's `ts`.

    With DDIM (η = 0, denoise=True) this is diffusers' DDIMScheduler with set_alpha_to_one=True whenever
    consecutive timesteps differ by N // num_inference_steps ("leading" or "trailing" spacing).
    set_alpha_to_one=False ends at ᾱ_0 instead: append T/N to ts (unless it is last) and pass denoise=False.
    """
    tau = torch.as_tensor(timesteps).detach().cpu().to(F64)
    if tau.ndim != 1 or not bool((tau == tau.round()).all()) or not bool(((tau >= 0) & (tau < sde.N)).all()):
        raise ValueError(f"timesteps must be a 1-D sequence of integers in [0, N - 1] = [0, {sde.N - 1}], "
                         f"got {tau.tolist()}")
    return (tau + 1) * (sde.T / sde.N)
