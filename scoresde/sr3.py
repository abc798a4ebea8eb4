"""SR3 (Saharia et al. 2021): image-conditional super-resolution by a network conditioned on the noise level.

The network sees the noisy high-resolution image x_γ = γ x₀ + √(1 − γ²) ε concatenated with y, the low-resolution
input up-sampled to full size (y = U D x₀, `scoresde.resize`), and the noise level γ = √ᾱ itself instead of a
timestep (`get_score_fn(..., noise_level=True)`). Training draws γ continuously (`sample_gamma`), so the network
is defined for every γ ∈ (γ_N, 1), and sampling may use any VP noise schedule and any number of steps.

SR3's Algorithm 2 is DDPM's ancestral sampler with σ_t² = β_t on the inference schedule's steps: in scoresde,
`get_sampler("ancestral", variance="beta", steps=K, eps=1/K)` on a VPSDE whose ᾱ(i/K) are the inference ᾱ_i
(for explicit betas, `VPSDE(schedule=DiscreteSchedule(betas), N=K)`), with its last step (z = 0) the final
Tweedie denoise; tests/test_sr3.py checks the identity path by path. Every other sampler runs too.
"""
from __future__ import annotations

from typing import Callable

import torch

from ._utils import ArgumentTypeError, check_callable, check_choice, check_positive_int, describe, noise_like
from .losses import REDUCTIONS, _reduce
from .parameterization import PARAMETERIZATIONS, convert
from .resize import low_pass
from .score import Score, as_score
from .sde import SDE, check_sde


def gamma_schedule(sde: SDE) -> torch.Tensor:
    """γ_i = √ᾱ_i of the SDE's N discrete steps, i = 0…N, with γ_0 = 1 (float64, decreasing)."""
    if not check_sde(sde).ddpm_lattice:
        raise ValueError(f"SR3's noise levels need a VP SDE with discrete betas (VPSDE), got {type(sde).__name__}")
    betas = sde.discrete_betas
    if not bool(((betas > 0) & (betas < 1)).all()):
        raise ValueError(f"SR3's noise levels need DDPM betas in (0, 1); this VPSDE's N={sde.N} steps give betas in "
                         f"[{betas.min().item():.3g}, {betas.max().item():.3g}]: use more steps or a smaller beta_max")
    return torch.cat([torch.ones(1, dtype=torch.float64), sde.alphas_cumprod.sqrt()])


def sample_gamma(sde: SDE, n: int, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
    """γ ~ p(γ) = (1/N) Σ_i U(γ_i, γ_{i−1}): a step i ~ U{1…N}, then γ uniform between its neighbours
    (Saharia et al. 2021, Section 2.4). The density is piecewise constant, 1/(N (γ_{i−1} − γ_i)) on (γ_i, γ_{i−1})."""
    gammas = gamma_schedule(sde).to(device)
    n = check_positive_int(n, "n")
    i = torch.randint(1, sde.N + 1, (n,), generator=generator, device=device)
    u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    return (gammas[i] + u * (gammas[i - 1] - gammas[i])).to(dtype)


def gamma_cdf(sde: SDE, gamma: torch.Tensor) -> torch.Tensor:
    """P(Γ ≤ γ) of `sample_gamma`: piecewise linear through (γ_i, (N − i)/N)."""
    gammas = gamma_schedule(sde).to(gamma.device).flip(0)  # increasing: γ_N … γ_0 = 1
    levels = torch.linspace(0, 1, sde.N + 1, dtype=torch.float64, device=gamma.device)
    g = gamma.double().clamp(gammas[0], gammas[-1])
    k = torch.searchsorted(gammas, g, right=True).clamp(1, sde.N)
    lo, hi = gammas[k - 1], gammas[k]
    return levels[k - 1] + (g - lo) / (hi - lo) / sde.N


def low_res_condition(x0: torch.Tensor, factor: int) -> torch.Tensor:
    """y = U D x₀: the image down-sampled by `factor` and up-sampled back (nearest), the network's second input."""
    return low_pass(x0, factor)


class SR3Loss:
    """E_{γ, ε} ‖ε − ε_θ(γ x₀ + √(1 − γ²) ε, γ, y)‖_p^p with γ ~ `sample_gamma` (Saharia et al. 2021, Eq. 6).

    With p = 2 and ε-prediction this is denoising score matching with λ = σ², at the times t whose α_t = γ.
    """

    def __init__(self, sde: SDE, parameterization: str = "eps", norm: int = 2, reduce: str = "mean"):
        gamma_schedule(sde)  # checks the SDE
        check_choice(parameterization, "parameterization", PARAMETERIZATIONS)
        if norm not in (1, 2) or isinstance(norm, bool):
            raise ValueError(f"norm must be 1 or 2 (SR3's p), got {norm!r}")
        check_choice(reduce, "reduce", REDUCTIONS)
        self.sde, self.parameterization, self.norm, self.reduce = sde, parameterization, norm, reduce

    def per_sample(self, model: Callable, x0: torch.Tensor, y: torch.Tensor, generator=None, gamma=None, noise=None):
        """Per-sample losses [B]; `model(x_γ, γ, y)`; pass gamma [B] and noise to fix the draws."""
        check_callable(model, "model", "model(x, gamma, y) returning a tensor shaped like x")
        if not isinstance(y, torch.Tensor) or y.shape != x0.shape:
            raise ArgumentTypeError(f"y must be the up-sampled low-resolution images, shaped like x0 "
                                    f"{tuple(x0.shape)}, got {describe(y)}")
        if gamma is None:
            gamma = sample_gamma(self.sde, x0.shape[0], generator, x0.device, x0.dtype)
        eps = noise_like(x0, generator) if noise is None else noise
        g = gamma.reshape(-1, *[1] * (x0.ndim - 1))
        s = (1 - g ** 2).sqrt()
        x = g * x0 + s * eps
        eps_hat = convert(model(x, gamma, y), x, gamma, s.flatten(), self.parameterization, "eps")
        return _reduce((eps_hat - eps).abs() ** self.norm, self.reduce)

    def __call__(self, model, x0, y, generator=None, gamma=None, noise=None) -> torch.Tensor:
        return self.per_sample(model, x0, y, generator, gamma, noise).mean()


def condition_on(score_fn, y: torch.Tensor) -> Score:
    """score_fn(x, t, y) with the conditioning images y [B, ...] bound: a score of (x, t) for any sampler."""
    score = as_score(score_fn)
    return score.derive(lambda x, t: score.outputs(x, t, y))


class LowResPairs:
    """Image data whose condition y is the image's own low-resolution version, up-sampled: train batches are
    (x₀, U D x₀), and `eval_conditions` holds the held-out conditions. Everything else is the wrapped data's."""

    def __init__(self, data, factor: int):
        if not getattr(data, "is_image", False):
            raise ValueError(f"SR3 needs image data, got {type(data).__name__}")
        self.factor = check_positive_int(factor, "config.sr3.factor")
        size = data.shape[-2:]
        if size[0] % factor or size[1] % factor:
            raise ValueError(f"config.sr3.factor={factor} must divide the image size {size[0]}x{size[1]}; "
                             f"valid factors: {[f for f in range(2, min(size) + 1) if not size[0] % f + size[1] % f]}")
        self.data = data
        self.eval_conditions = low_res_condition(data.eval_data, factor)  # the held-out conditions y
        self.num_classes, self.eval_labels = 0, None  # the model is conditioned on images, not on class labels

    def __getattr__(self, name):
        return getattr(self.data, name)

    def train_batch(self, step: int, batch_size: int, seed: int):
        """(x₀ [B, C, H, W], y = U D x₀ [B, C, H, W])."""
        x, _ = self.data.train_batch(step, batch_size, seed)
        return x, low_res_condition(x, self.factor)
