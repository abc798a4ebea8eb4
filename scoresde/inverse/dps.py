"""DPS, diffusion posterior sampling (Chung et al. 2023, Algorithm 1 and its Gaussian-noise variant).

After each move x'_s from x_t, a gradient step on the data misfit of x̂_0(x_t):
    x_s = x'_s − ζ ∇_{x_t} ‖y − 𝒜(x̂_0(x_t))‖,
the gradient taken through the network (one vector-Jacobian product per step). This is their step size
ζ_t = ζ'/‖y − 𝒜(x̂_0)‖ on ∇‖·‖² up to a factor 2 (the authors' released code uses the norm and one ζ). 𝒜 may
be any differentiable forward model, linear or not. σ_y is not read: the residual's norm sets the step, so ζ
is what adapts to the noise. With a LinearOperator the residual is taken in A's range (noise on what A never
observes, such as a mask's zeros, is dropped). ζ = 1 is the authors' choice for their noisy FFHQ/ImageNet tasks
(σ_y = 0.05) with 1000 ancestral steps; it is not tuned for other budgets or data.
"""
from __future__ import annotations

import torch

from .._utils import check_real, noise_like
from .base import Solver, grad_of


class DPS(Solver):
    """DPS: the move, then −ζ ∇_{x_t} ‖y − 𝒜(x̂_0(x_t))‖."""

    method = "dps"
    options = ("zeta",)
    linear = False  # any differentiable forward model

    def __init__(self, sampler, operator, y, sigma_y: float = 0.0, shape=None, zeta: float = 1.0):
        super().__init__(sampler, operator, y, sigma_y, shape)
        self.zeta = check_real(zeta, "zeta", low=0)  # ζ, the step on ∇‖y − 𝒜(x̂_0)‖

    def move(self, score, x, k, c, generator):
        last = k == len(c["t"]) - 1
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            x0 = self.x0_hat(score, xg, k, c)
            if last:  # the estimate of x_0 itself, as DPS returns x̂_0
                return x0.detach()
            predicted = self.operator(x0)
            if predicted.shape != c["y"].shape:
                raise ValueError(f"operator maps x of shape {tuple(x0.shape)} to {tuple(predicted.shape)}, but y has "
                                 f"shape {tuple(c['y'].shape)}")
            misfit = self.in_range(c["y"] - predicted).flatten(1).norm(dim=1).sum()
            g = grad_of(misfit, xg)
        x0 = x0.detach()
        return self.ddim(x, x0, k, c, c["c"][k] * noise_like(x, generator)) - self.zeta * g
