"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), for any SDE with Gaussian marginals.

From s < t on the grid, with x̂_0 = (x_t + σ_t² s_θ)/α_t, a = α_t/α_s and v = σ_t² − a² σ_s²:
    x_s = (a σ_s²/σ_t²) x_t + (α_s v/σ_t²) x̂_0 + σ z,   σ² = β̃ = v σ_s²/σ_t²  or  β = v.
This is the posterior q(x_s | x_t, x̂_0) (Ho et al. 2020, Eqs. 6–7). On VP with v = 1 − a² it is
DDPM's x_{t−1} = (x_t − β_t/√(1−ᾱ_t) ε_θ)/√α_t + σ_t z; on VE it is SMLD's ancestral sampler
(Song et al. 2021, Eq. 47). The coefficients use the model's own ᾱ on the chosen grid (ᾱ(t) for a
continuous model, DDPM's ᾱ_i for a discrete one), so β never reaches 1 and any number of steps works.
σ² may also be the model's learned Σ_θ (Nichol & Dhariwal 2021, Eq. 15) or Analytic-DPM's optimal
variance (Bao et al. 2022), see scoresde.variances; on a respaced grid β and β̃ are the respaced ones.
"""
from __future__ import annotations

import torch

from .._utils import ArgumentTypeError, check_batch, check_choice, describe, noise_like
from ..sde import posterior_coeffs
from ..variances import VARIANCES, analytic_variance, resolve_variance, score_second_moment
from .base import Sampler, sqrt_


class AncestralSampler(Sampler):
    """DDPM Algorithm 2; with a discrete-time score on VPSDE and steps = N it is DDPM exactly."""

    name = "ancestral"
    one_step_when = ""  # one step at a time from x alone: projection-based conditioning applies
    kind = "discrete"  # family, for `scoresde compare`

    def __init__(self, variance: str | None = None, data=None, **kwargs):
        super().__init__(**kwargs)
        # σ² of each step: None (the model's: "learned" if it declares one, else "beta_tilde"), or one of VARIANCES
        self.variance = None if variance is None else check_choice(variance, "variance", VARIANCES)
        if data is not None and (not isinstance(data, torch.Tensor) or data.ndim < 2):
            raise ArgumentTypeError(f"data must be a tensor of data samples [M, ...], got {describe(data)}")
        self.data = data  # "analytic": data samples x_0 for Γ_t = E‖s_θ(x_t, t)‖²/d (Bao et al. 2022)
        self.needs_data = self.variance == "analytic"  # declared, so a Run can supply its data
        self._gamma = None  # (score, grid) -> Γ, kept for the next batch

    def prepare(self, sde, ts):
        return self._tables(sde, ts, self.variance or "beta_tilde")

    def prepare_for(self, score, sde, ts, x):
        variance = resolve_variance(self.variance, score.score)  # score: the CountedScore; .score its declared Score
        c = self._tables(sde, ts, variance if variance in ("beta", "beta_tilde") else "beta_tilde")
        alpha, sigma = sde.marginal_coeffs(ts)
        if variance == "learned":  # Σ = exp(v log β + (1 − v) log β̃), per element, in step
            _, beta, beta_tilde = posterior_coeffs(alpha[:-1], sigma[:-1], alpha[1:], sigma[1:])
            c.update(log_beta=beta.log(), log_beta_tilde=beta_tilde.log())
        elif variance == "analytic":
            gamma = self._second_moment(score, sde, ts[:-1], x)
            c["std"] = sqrt_(analytic_variance(alpha[:-1], sigma[:-1], alpha[1:], sigma[1:], gamma))
        return c

    def _tables(self, sde, ts, variance):
        alpha, sigma = sde.marginal_coeffs(ts)
        a, v, beta_tilde = posterior_coeffs(alpha[:-1], sigma[:-1], alpha[1:], sigma[1:])
        c_x, c_0 = a * sigma[1:] ** 2 / sigma[:-1] ** 2, alpha[1:] * v / sigma[:-1] ** 2
        # Fold x̂_0 = (x + σ_t² s)/α_t in:  x_s = A x + B s + std z.
        return {"A": c_x + c_0 / alpha[:-1], "B": c_0 * sigma[:-1] ** 2 / alpha[:-1],
                "std": sqrt_(beta_tilde if variance == "beta_tilde" else v)}

    def _second_moment(self, score, sde, ts, x):
        """Γ at the grid's times from self.data (one fixed draw), reused while the model and grid stay the same."""
        key = (score.score, tuple(ts.tolist()))  # a Score compares by its fn and facts
        if self._gamma is None or self._gamma[0] != key:
            if self.data is None:
                raise ValueError("variance='analytic' needs data=x0, data samples [M, ...] to estimate E||s||^2 from "
                                 "(Run.sample supplies the run's training data)")
            check_batch(self.data, "data", finite=True)
            data = self.data.to(x.device, x.dtype)
            g = torch.Generator(device=data.device).manual_seed(0)
            self._gamma = (key, score_second_moment(score.score, sde, data, ts, g))
        return self._gamma[1]

    def step(self, score, sde, x, k, c, generator):
        if "log_beta" not in c:
            return c["A"][k] * x + c["B"][k] * score(x, c["t"][k]) + c["std"][k] * noise_like(x, generator)
        s, v = score.score_and_v(x, c["t"][k])
        std = torch.exp(0.5 * (v * c["log_beta"][k] + (1 - v) * c["log_beta_tilde"][k]))
        return c["A"][k] * x + c["B"][k] * s + std * noise_like(x, generator)
