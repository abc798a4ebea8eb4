"""Network outputs ε, score, x₀ and v, the exact conversions between them, and `get_score_fn`.

With x_t = α_t x_0 + σ_t ε (any SDE in scoresde.sde):
    score = −ε / σ_t                                  (Song et al. 2021, Eq. 7 ↔ Ho et al. 2020, Eq. 11)
    x_0   = (x_t − σ_t ε) / α_t                        (Tweedie's formula)
    v     = α_t ε − σ_t x_0                            (Salimans & Ho 2022; for VP α² + σ² = 1)
    F     = (x_0 − c_skip x̃)/c_out, x̃ = x_t/α_t       (EDM's preconditioned network at σ = σ_t/α_t,
                                                        scoresde.preconditioning: "edm" with σ_d, and
                                                        EDM's VP and VE baselines "edm_vp", "edm_ve")
Each `*_to_eps` / `eps_to_*` pair below is an exact inverse for every SDE, VE included.
"""
from __future__ import annotations

from typing import Callable

import torch

from ._utils import append_dims, check_bool, check_callable, check_choice
from .preconditioning import PRECONDITIONINGS, SIGMA_DATA
from .score import PARAMETERIZATION_NAMES, Score, as_score
from .sde import SDE, check_sde


def eps_to_score(eps, x, alpha, sigma):
    return -eps / sigma


def score_to_eps(score, x, alpha, sigma):
    return -sigma * score


def eps_to_x0(eps, x, alpha, sigma):
    return (x - sigma * eps) / alpha


def x0_to_eps(x0, x, alpha, sigma):
    return (x - alpha * x0) / sigma


def eps_to_v(eps, x, alpha, sigma):
    return alpha * eps - sigma * eps_to_x0(eps, x, alpha, sigma)


def v_to_eps(v, x, alpha, sigma):
    """Solve x = α x₀ + σ ε, v = α ε − σ x₀ for ε: ε = (α v + σ x)/(α² + σ²)."""
    return (alpha * v + sigma * x) / (alpha**2 + sigma**2)


def preconditioned(name: str):
    """(F → ε, ε → F) of a preconditioning in scoresde.preconditioning: D = c_skip x̃ + c_out F is the x₀
    prediction at EDM's σ = σ_t/α_t, x̃ = x_t/α_t."""
    coefficients = PRECONDITIONINGS[name]

    def to_eps(f, x, alpha, sigma, sigma_data=SIGMA_DATA):
        c_skip, c_out, _, _ = coefficients(sigma / alpha, sigma_data)
        return x0_to_eps(c_skip * (x / alpha) + c_out * f, x, alpha, sigma)

    def from_eps(eps, x, alpha, sigma, sigma_data=SIGMA_DATA):
        c_skip, c_out, _, _ = coefficients(sigma / alpha, sigma_data)
        return (eps_to_x0(eps, x, alpha, sigma) - c_skip * (x / alpha)) / c_out
    return to_eps, from_eps


# name -> (output -> ε, ε -> output); arguments are (value, x, alpha, sigma) with alpha, sigma broadcastable.
PARAMETERIZATIONS = {
    "eps": (lambda e, x, a, s: e, lambda e, x, a, s: e),
    "score": (score_to_eps, eps_to_score),
    "x0": (x0_to_eps, eps_to_x0),
    "v": (v_to_eps, eps_to_v),
    **{name: preconditioned(name) for name in PRECONDITIONINGS},
}
assert tuple(PARAMETERIZATIONS) == PARAMETERIZATION_NAMES  # Score checks the names without importing this module


def convert(value: torch.Tensor, x: torch.Tensor, alpha, sigma, source: str, target: str,
            sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """Convert a prediction between parameterisations; alpha, sigma are per-sample tensors [B]; sigma_data is
    EDM's σ_d (for "edm"; EDM's VP and VE baselines do not use it)."""
    for name in (source, target):
        check_choice(name, "parameterization", PARAMETERIZATIONS)
    a, s = append_dims(alpha, x.ndim), append_dims(sigma, x.ndim)
    d = {"sigma_data": sigma_data}
    eps = PARAMETERIZATIONS[source][0](value, x, a, s, **(d if source in PRECONDITIONINGS else {}))
    return PARAMETERIZATIONS[target][1](eps, x, a, s, **(d if target in PRECONDITIONINGS else {}))


def get_score_fn(model: Callable, sde: SDE, parameterization: str = "eps", continuous: bool = True,
                 learned_variance: bool = False, noise_level: bool = False, sigma_data: float = SIGMA_DATA) -> Score:
    """Wrap `model(x, label[, y])` into the `Score` s(x, t, y=None) that samplers and likelihoods call.

    The result declares what it is (`scoresde.score.Score`): the choices below, and the model's own `num_classes`
    and `data_shape` where it declares them.
    y: class labels [B] for a class-conditional model (`model.num_classes` = K > 0, declared as `num_classes`); y = None, or the label K, is "no label". Samplers call score_fn(x, t):
    conditioning and guidance bind y first (`scoresde.guidance`).

    continuous=True: the model receives t itself (float [B] in (0, T]); scale it inside the model if
    its time embedding needs it (the U-Net's `time_scale`). The conversion uses α_t, σ_t of ᾱ(t).
    continuous=False: the model receives DDPM's integer index i − 1 ∈ {0…N−1} of the step t_i = iT/N
    nearest to t (`SDE.timestep`), and the conversion uses the discrete ᾱ_i (VPSDE only).
    The choice is declared as `continuous`; samplers read it.
    learned_variance=True: the model returns twice the channels of x (dim 1), the prediction and then v of
    Σ = exp(v log β + (1 − v) log β̃) (Nichol & Dhariwal 2021, Eq. 15); declared as `learned_variance`, with
    `score_and_v(x, t)` returning (score, v) from one model call (see scoresde.variances).
    noise_level=True: the model receives the noise level γ = α_t = √ᾱ(t) of `sde` instead of t (SR3, Saharia
    et al. 2021; scoresde.sr3). The network then knows nothing of the schedule, so the same model runs under
    any VP SDE: build its score for another schedule with get_score_fn(model, other_sde, ..., noise_level=True).
    Declared as `noise_level`.
    An SDE with a prior N(μ, Σ) (`sde.with_prior`, PriorGrad): the model works in x̃ = L⁻¹(x − μ) and score_fn
    returns the score of x, L⁻ᵀ s̃ (a per-class prior needs `sde.given(y)` first).
    parameterization="edm" (EDM's preconditioning, Karras et al. 2022, with σ_d = sigma_data): the model is F and
    receives c_in(σ) x_t/α_t and c_noise(σ) = ¼ ln σ at EDM's σ = σ_t/α_t instead of (x_t, t); its denoiser
    D = c_skip x_t/α_t + c_out F predicts x₀. Continuous time only. "edm_vp" and "edm_ve" are EDM's VP and VE
    baselines (Table 1): the same form with their own c_skip, c_out, c_in and c_noise (σ_d unused).
    """
    check_callable(model, "model", "model(x, label) returning a tensor shaped like x")
    check_sde(sde)
    check_choice(parameterization, "parameterization", PARAMETERIZATIONS)
    check_bool(continuous, "continuous")
    check_bool(learned_variance, "learned_variance")
    check_bool(noise_level, "noise_level")
    if noise_level and (not continuous or not sde.variance_preserving):
        raise ValueError(f"noise_level=True conditions on γ = α_t, which fixes σ_t = √(1 − γ²) only on a variance-"
                         f"preserving SDE in continuous time: got {type(sde).__name__} with continuous={continuous}")
    if not continuous and not sde.ddpm_lattice:
        raise ValueError(f"continuous=False needs an SDE with discrete DDPM betas (VPSDE), got {type(sde).__name__}")
    edm = parameterization in PRECONDITIONINGS
    if edm and (not continuous or noise_level or learned_variance):
        raise ValueError(f"parameterization={parameterization!r} conditions the network on EDM's σ in continuous time: it takes "
                         "neither continuous=False, noise_level=True nor learned_variance=True")
    if edm and not sigma_data > 0:
        raise ValueError(f"sigma_data must be > 0 (the data's standard deviation), got {sigma_data!r}")

    def outputs(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        x = sde.whiten(x)  # with a prior N(μ, Σ) the network sees x̃ = L⁻¹(x − μ) (scoresde.prior); else x itself
        if continuous:
            alpha, sigma = sde.marginal_coeffs(t)
            label = alpha if noise_level else t
        else:
            label = sde.timestep(t)
            abar = sde.alphas_cumprod.to(x.device)[label]  # float64: in float32, 1 − ᾱ loses digits near t = 0
            alpha, sigma = abar.sqrt().to(x.dtype), (1 - abar).sqrt().to(x.dtype)
        inputs = x
        if edm:  # EDM's network input and noise conditioning at σ = σ_t/α_t
            _, _, c_in, label = PRECONDITIONINGS[parameterization](sigma / alpha, sigma_data)
            inputs = append_dims(c_in / alpha, x.ndim) * x
        raw = model(inputs, label) if y is None else model(inputs, label, y)
        out, v = split_variance(raw, x) if learned_variance else (raw, None)
        score = sde.unwhiten_score(convert(out, x, alpha, sigma, parameterization, "score", sigma_data))
        return (score, v) if learned_variance else score

    return Score(outputs, continuous=continuous, parameterization=parameterization, learned_variance=learned_variance,
                 noise_level=noise_level, num_classes=getattr(model, "num_classes", None) or 0,
                 data_shape=getattr(model, "data_shape", None))


def split_variance(out: torch.Tensor, x: torch.Tensor):
    """A learned-variance model's output [B, 2C, ...] as (prediction, v), each shaped like x [B, C, ...]."""
    if not isinstance(out, torch.Tensor) or out.ndim != x.ndim or out.shape[0] != x.shape[0] \
            or out.shape[1] != 2 * x.shape[1] or out.shape[2:] != x.shape[2:]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"a learned-variance model must return twice the channels of x {tuple(x.shape)} along "
                         f"dim 1 (the prediction, then v), got {got}")
    return out.chunk(2, dim=1)


def time_convention(score_fn) -> str:
    """"continuous" or "discrete": the time convention a score declares (`Score.continuous`).

    A plain function is continuous. A discrete score is a DDPM model: samplers give it DDPM's discrete ᾱ_i and
    move their grid onto its steps t_i = iT/N (`scoresde.sde.DiscreteTimeVPSDE`). Declare a hand-written DDPM
    score as `scoresde.Score(fn, continuous=False)`.
    """
    return "continuous" if as_score(score_fn).continuous else "discrete"
