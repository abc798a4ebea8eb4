"""Probability-flow ODE sampling dx/dt = f(t) x − ½ g(t)² ∇log p_t(x) (Song et al. 2021, Eq. 13)."""
from __future__ import annotations

import torch

from .._utils import check_choice
from ..sde import reverse_drift
from .base import Sampler
from .ode_solvers import SOLVERS, check_tolerances

FIXED_STEP = ("euler", "heun")
METHODS = tuple(SOLVERS) + FIXED_STEP


def probability_flow_drift(score, sde, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """f(t) x − ½ g(t)² s(x, t) for t of shape [B]."""
    return reverse_drift(sde, score, x, t, 0.5)


class ODESampler(Sampler):
    """Integrates the probability-flow ODE from T to eps.

    method: "dopri5" (adaptive RK45 in torch, on the device), "rk45" (scipy.integrate.solve_ivp, for
    parity with score_sde; copies to the host at every evaluation), or fixed-step "euler" / "heun" on
    the grid of `steps` times (Heun: 2 NFE per interval; Karras et al. 2022, Algorithm 1).
    Adaptive methods ignore `steps` and `ts` and stop when their error control is satisfied, or fail
    after `max_nfe` score evaluations.
    """

    name = "ode"
    one_step_when = " (method euler or heun)"  # the fixed-step methods; adaptive ones do not step on the grid
    kind = "ODE"  # family, for `scoresde compare`
    stochastic = False

    @property
    def one_step(self) -> bool:
        return self.method in FIXED_STEP

    def __init__(self, method: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5, max_nfe: int = 10_000,
                 **kwargs):
        super().__init__(**kwargs)
        self.method = check_choice(method, "method", METHODS)
        check_tolerances(rtol, atol, max_nfe)
        self.rtol, self.atol, self.max_nfe = rtol, atol, max_nfe  # adaptive methods' tolerances and budget
        self.adaptive = method not in FIXED_STEP

    def integrate(self, score, sde, x, ts, generator):
        if self.method in FIXED_STEP:
            return super().integrate(score, sde, x, ts, generator)
        batch = x.shape[0]

        def func(t: float, y: torch.Tensor) -> torch.Tensor:
            return probability_flow_drift(score, sde, y, torch.full((batch,), t, device=y.device, dtype=y.dtype))

        x = SOLVERS[self.method](func, x, ts[0].item(), ts[-1].item(), rtol=self.rtol, atol=self.atol,
                                 max_nfe=self.max_nfe)
        self._record(x, ts[-1], 0)
        return x

    def step(self, score, sde, x, k, c, generator):
        t, t_next = c["t"][k], c["t"][k + 1]
        d = probability_flow_drift(score, sde, x, t.expand(x.shape[0]))
        x_euler = x + (t_next - t) * d
        if self.method == "euler":
            return x_euler
        d_next = probability_flow_drift(score, sde, x_euler, t_next.expand(x.shape[0]))
        return x + (t_next - t) * 0.5 * (d + d_next)
