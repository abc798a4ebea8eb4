"""EDM's stochastic Heun sampler (Karras et al. 2022, "Elucidating the Design Space…", Algorithm 2),
in the σ = σ_t/α_t parameterisation: x̃ = x/α_t follows dx̃/dσ = (x̃ − D(x̃, σ))/σ with D = x̂_0.

Per step from σ_k to σ_{k+1}: γ_k = min(S_churn/K, √2 − 1) where S_tmin ≤ σ_k ≤ S_tmax (else 0), K = len(ts);
σ̂ = (1 + γ_k) σ_k, x̃ ← x̃ + √(σ̂² − σ_k²) S_noise z; then an Euler step d = (x̃ − D(x̃, σ̂))/σ̂ and Heun's
correction with d' at σ_{k+1}. σ̂ is capped at the grid's first σ, so the churned time stays in (0, T]. Two NFE per step;
the final Tweedie step plays the part of Algorithm 2's last Euler step to σ = 0.
"""
from __future__ import annotations

import math

import torch

from .._utils import check_choice, check_real, noise_like
from .base import Sampler, tweedie
from .grids import t_of_log_snr


# EDM's stochastic settings by name (Karras et al. 2022, Table 5): S_churn, S_tmin, S_tmax, S_noise
PRESETS = {"deterministic": dict(S_churn=0.0, S_tmin=0.0, S_tmax=math.inf, S_noise=1.0),  # Algorithm 1
           "imagenet64": dict(S_churn=40.0, S_tmin=0.05, S_tmax=50.0, S_noise=1.003)}


class EDMHeunSampler(Sampler):
    """Karras et al. (2022) Algorithm 2; S_churn = 0 (default) is their deterministic Algorithm 1."""

    name = "edm"
    one_step_when = ""  # one step at a time from x alone: projection-based conditioning applies
    kind = "ODE"  # family, for `scoresde compare` (with churn > 0 it draws noise, like an SDE solver)
    # Karras's σ grid. Measured: quadratic in t is better at 20–50 NFE on the linear VP (benchmarks/low_nfe.py)
    # but fails on the cosine schedule, whose σ changes violently near T (covariance error 2.8 at 50 steps).
    default_grid = "karras"

    def __init__(self, S_churn: float | None = None, S_tmin: float | None = None, S_tmax: float | None = None,
                 S_noise: float | None = None, preset: str = "deterministic", **kwargs):
        super().__init__(**kwargs)
        values = dict(PRESETS[check_choice(preset, "preset", PRESETS)])  # a preset, with any S_* given on top
        values.update({k: v for k, v in dict(S_churn=S_churn, S_tmin=S_tmin, S_tmax=S_tmax, S_noise=S_noise).items()
                       if v is not None})
        S_churn, S_tmin, S_tmax, S_noise = values["S_churn"], values["S_tmin"], values["S_tmax"], values["S_noise"]
        self.preset = preset
        self.S_churn = check_real(S_churn, "S_churn", low=0)  # total amount of added noise
        self.S_tmin = check_real(S_tmin, "S_tmin", low=0)  # σ range where noise is added
        self.S_tmax = math.inf if S_tmax == math.inf else check_real(S_tmax, "S_tmax", low=self.S_tmin)
        self.S_noise = check_real(S_noise, "S_noise", low=0)  # std of the added noise; slightly above 1 offsets score shrinkage
        self.stochastic = self.S_churn > 0

    def prepare(self, sde, ts):
        alpha, sigma = sde.marginal_coeffs(ts)
        s = sigma / alpha  # σ of the grid
        gamma = ((s >= self.S_tmin) & (s <= self.S_tmax)).to(s.dtype) * min(self.S_churn / len(ts), 2**0.5 - 1)
        s_hat = torch.minimum((1 + gamma) * s, s[0])[:-1]
        t_hat = torch.where(gamma[:-1] > 0, t_of_log_snr(sde, -s_hat.log(), ts[0].item(), ts[-1].item()), ts[:-1])
        if sde.on_lattice:  # a discrete-time model: the churned time moves to a DDPM step too
            t_hat = sde.snap(t_hat, unique=False)
        a_hat, sig_hat = sde.marginal_coeffs(t_hat)
        return {"alpha": alpha, "s": s, "t_hat": t_hat, "a_hat": a_hat, "s_hat": sig_hat / a_hat,
                "noise": self.S_noise * (sig_hat**2 / a_hat**2 - s[:-1] ** 2).clamp(min=0).sqrt()}

    def denoise_x(self, score, x_tilde, t, a, s):
        """D(x̃, σ) = x̂_0(α x̃, t)."""
        return tweedie(score, a * x_tilde, t, a, a * s)

    def step(self, score, sde, x, k, c, generator):
        x = x / c["alpha"][k]
        if self.stochastic:
            x = x + c["noise"][k] * noise_like(x, generator)
        s_hat, s_next = c["s_hat"][k], c["s"][k + 1]
        d = (x - self.denoise_x(score, x, c["t_hat"][k], c["a_hat"][k], s_hat)) / s_hat
        x_euler = x + (s_next - s_hat) * d
        d_next = (x_euler - self.denoise_x(score, x_euler, c["t"][k + 1], c["alpha"][k + 1], s_next)) / s_next
        return c["alpha"][k + 1] * (x + (s_next - s_hat) * 0.5 * (d + d_next))
