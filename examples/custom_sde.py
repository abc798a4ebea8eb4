"""A user-defined schedule and a user-defined SDE: each needs only the methods its math requires.

1. A schedule for VPSDE: beta(t) and its integral (discrete_betas only if you want DDPM's discrete view).
2. A new linear SDE: coefficients(t) -> (f, g) and marginal_coeffs(t) -> (alpha, sigma).
Both then work with every loss, sampler and the likelihood.

    python examples/custom_sde.py
"""
import math

import torch

import scoresde
from scoresde.analytic import GaussianMixture
from scoresde.sampling import get_sampler


class ExponentialSchedule:
    """β(t) = β_0 e^{kt}, ∫₀ᵗ β = β_0 (e^{kt} − 1)/k."""

    def __init__(self, beta_0=0.1, k=math.log(200.0)):
        self.beta_0, self.k = beta_0, k

    def beta(self, t):
        return self.beta_0 * torch.exp(self.k * t)

    def integral(self, t):
        return self.beta_0 * torch.expm1(self.k * t) / self.k

    def discrete_betas(self, N):
        t = torch.linspace(0, 1, N + 1, dtype=torch.float64)
        return -torch.expm1(-(self.integral(t[1:]) - self.integral(t[:-1])))


class ScaledBrownian(scoresde.SDE):
    """dx = s dw: α_t = 1, σ_t = s √t (VE with a linear variance)."""

    sampling_eps = 1e-4

    def __init__(self, s=5.0, N=1000):
        super().__init__(N=N)
        self.s = s
        self.prior_std = s  # p_1 ≈ N(0, s² I) when s is much larger than the data

    def coefficients(self, t):
        return torch.zeros_like(t), torch.full_like(t, self.s)

    def marginal_coeffs(self, t):
        return torch.ones_like(t), self.s * t.sqrt()


def main():
    data = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], torch.eye(2, dtype=torch.float64).expand(2, 2, 2) * 0.05)
    for name, sde in [("VP, exponential schedule", scoresde.VPSDE(schedule=ExponentialSchedule())),
                      ("scaled Brownian motion", ScaledBrownian())]:
        x, nfe = get_sampler("ode", method="heun", steps=100, progress=False)(
            data.score_fn(sde), sde, (2000, 2), generator=torch.Generator().manual_seed(0))
        print(f"{name:26s}: NFE {nfe}, sample mean {x.mean(0).numpy().round(3)}, "
              f"fraction right of 0: {(x[:, 0] > 0).float().mean():.3f} (exact 0.5)")


if __name__ == "__main__":
    main()
