"""DDNM, the range-null space decomposition (Wang, Yu & Zhang 2023, Eq. 13; DDNM⁺ for noise, Eqs. 17–19).

Before each move, x̂_0's range-space part is replaced by the observation's, its null-space part kept:
    x̂_0 ← x̂_0 − A⁺(A x̂_0 − y)                        (σ_y = 0: then A x̂_0 = y exactly)
    x̂_0 ← x̂_0 − V λ_t Σ⁺ Uᵀ(A x̂_0 − y)               (DDNM⁺, σ_y > 0)
In DDNM⁺ the correction λ_t,i ≤ 1 carries noise a λ_t,i σ_y/s_i into the move, where a is x̂_0's coefficient in
it (x_s = a x̂_0 + (√(σ_s² − c²)/σ_t) x_t + noise, a = α_s − α_t √(σ_s² − c²)/σ_t), so λ_t,i = min(1, c s_i/(a σ_y))
and the move's fresh noise on that coordinate shrinks to √(c² − (a λ_t,i σ_y/s_i)²): the total stays c, the
move's own. With η = 0 (ddim) there is no noise to trade, so DDNM⁺ would leave x̂_0 alone: it needs ancestral
(η = 1), as the paper uses, or η > 0 (η = 0 is refused with σ_y > 0). The last move (c = 0) returns x̂_0,
corrected when σ_y = 0, so then A x = y exactly. The paper's "time travel" (RePaint-like resampling) is not
implemented. No step size or scale to tune.
"""
from __future__ import annotations

import math

import torch

from .._utils import noise_like
from .base import Solver, safe_inverse


class DDNM(Solver):
    """DDNM (σ_y = 0) and DDNM⁺ (σ_y > 0)."""

    method = "ddnm"

    def __init__(self, sampler, operator, y, sigma_y: float = 0.0, shape=None):
        super().__init__(sampler, operator, y, sigma_y, shape)
        if self.sigma_y > 0 and self.eta == 0:
            raise ValueError("method 'ddnm' with sigma_y > 0 (DDNM⁺) corrects x̂_0 only as far as the move's noise "
                             "absorbs y's: with ddim at eta=0 there is none and y would be ignored; use sampler "
                             "'ancestral' or ddim with eta > 0")

    def move(self, score, x, k, c, generator):
        op = self.operator
        x0 = self.x0_hat(score, x, k, c)
        s, ybar = self.spectral_y(c, x)
        residual = op.Vt(x0)[:, :len(s)] - ybar  # Σ⁺Uᵀ(A x̂_0 − y) on the observed coordinates (0 where s = 0)
        ck, last = c["c"][k], k == len(c["t"]) - 1
        a = c["alpha"][k + 1] - c["alpha"][k] * (c["sigma"][k + 1] ** 2 - ck**2).clamp(min=0).sqrt() / c["sigma"][k]
        if self.sigma_y == 0:
            x0 = x0 - op.V(op.pad(residual * (s > 0)))
            return x0 if last else self.ddim(x, x0, k, c, ck * noise_like(x, generator))
        noise_x0 = a * self.sigma_y * safe_inverse(s)  # the noise a λ σ_y/s at λ = 1, per observed coordinate
        lam = torch.where(s > 0, torch.clamp(ck * safe_inverse(noise_x0), max=1.0), torch.zeros_like(s))
        x0 = x0 - op.V(op.pad(lam * residual))
        if last:
            return x0
        std = ck * torch.ones(math.prod(op.shape), dtype=x.dtype, device=x.device)  # per coordinate of Vᵀz
        std[:len(s)] = (ck**2 - (lam * noise_x0) ** 2).clamp(min=0).sqrt()
        return self.ddim(x, x0, k, c, op.V(std * op.Vt(noise_like(x, generator))))
