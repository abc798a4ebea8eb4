"""What DPM-Solver++, UniPC, DEIS and DPM-Solver++(2M) SDE share: exponential integrators in log-SNR.

With λ_t = log(α_t/σ_t) and the data prediction x̂_0(x, t) = (x + σ_t² s_θ(x, t))/α_t, the probability-flow
ODE from t_k to t_{k+1} (h = λ_{k+1} − λ_k > 0) is solved exactly by (Lu et al. 2022, DPM-Solver++, Eq. 9)
    x_{k+1} = (σ_{k+1}/σ_k) x_k + σ_{k+1} ∫_{λ_k}^{λ_{k+1}} e^λ x̂_0(x_λ, λ) dλ.
Each solver replaces x̂_0 by a polynomial through its latest model outputs. The history lives in the
per-call table `c`, never on the sampler, so one sampler object can run several calls at once.
"""
from __future__ import annotations

import copy

import torch

from .._utils import check_bool
from .base import Sampler, tweedie

LOWER_ORDER_BELOW = 15  # lower_order_final acts when there are fewer intervals than this (as in DPM-Solver, diffusers)


def step_orders(order: int, n: int, lower_order_final: bool, denoise: bool) -> list[int]:
    """Order of each of n steps: warm-up min(order, k + 1); with `lower_order_final` and few steps, the orders
    also fall to 1, 2, … over the last steps (Lu et al. 2022), which keeps very short grids stable. The
    final Tweedie step (denoise=True) is the first-order last step to σ = 0, so it counts as one of them."""
    final = lower_order_final and n < LOWER_ORDER_BELOW
    return [min(order, k + 1, n - k + denoise if final else order) for k in range(n)]


class ExponentialIntegrator(Sampler):
    """Shared loop: evaluate the model at t_k, keep the last `max_order` outputs, let `update` move x."""

    kind = "ODE"  # family, for `scoresde compare`
    stochastic = False
    default_grid = "logsnr"
    max_order = 3
    one_step_when = " (order=1)"  # higher orders reuse model outputs along the unprojected path
    optimizes_grid = True  # local_step below: grid="optimized" applies

    @property
    def one_step(self) -> bool:
        return self.order == 1

    default_order = 2  # when neither the user nor the budget rule (budget.py) sets it
    default_lower_order_final = True

    def __init__(self, order: int | None = None, lower_order_final: bool | None = None, **kwargs):
        super().__init__(**kwargs)
        order = self.rule.get("order", self.default_order) if order is None else order
        if lower_order_final is None:
            lower_order_final = self.rule.get("lower_order_final", self.default_lower_order_final)
        if isinstance(order, bool) or order not in range(1, self.max_order + 1):
            raise ValueError(f"order must be one of {list(range(1, self.max_order + 1))}, got {order!r}")
        self.order = order  # multistep order
        self.lower_order_final = check_bool(lower_order_final, "lower_order_final")  # lower the last steps' order

    def prepare(self, sde, ts):
        alpha, sigma = sde.marginal_coeffs(ts)
        lam = (alpha / sigma).log()
        h = lam.diff()  # h_k = λ_{k+1} − λ_k
        r = [torch.ones_like(h), torch.ones_like(h)]  # r_j[k] = h_{k−j−1}/h_k, past step lengths in units of h_k
        for j in (0, 1):
            r[j][j + 1:] = h[:len(h) - j - 1] / h[j + 1:]
        return {"alpha": alpha, "sigma": sigma, "lam": lam, "h": h, "r0": r[0], "r1": r[1],
                "A": sigma[1:] / sigma[:-1], "B": -alpha[1:] * (-h).expm1(),  # x ← A x + B x̂_0 is DDIM
                "order": self.step_orders_for(len(ts) - 1)}

    def step_orders_for(self, n):
        return step_orders(self.order, n, self.lower_order_final, self.denoise)

    def local_step(self, sde, ts, xs, x0s, order):
        """`update` from xs[-1] with the history made of (xs, x0s), in this solver's own tables for the grid ts
        (order + 1 times: warm-up orders 1 … order, the last one `order`)."""
        if len(ts) != order + 1:
            raise ValueError(f"a local step of order {order} needs {order + 1} times, got {len(ts)}")
        solver = copy.copy(self)  # the same solver, asked for exactly this order on the short grid
        solver.order, solver.lower_order_final = order, False
        x = xs[-1]
        c = {k: v.to(x.device, x.dtype) if isinstance(v, torch.Tensor) else v for k, v in solver.prepare(sde, ts).items()}
        history = [solver.history_value(xs[j], x0s[j], j, c) for j in range(order)]
        return solver.update(x, order - 1, c, history, None)

    def history_value(self, x, x0, k, c):
        """What the solver keeps of each model call: x̂_0 (data prediction) by default."""
        return x0

    def step(self, score, sde, x, k, c, generator):
        x0 = tweedie(score, x, c["t"][k], c["alpha"][k], c["sigma"][k])
        history = c.setdefault("history", [])  # newest last; local to this call
        x = self.correct(x, k, c, history, x0)
        history.append(self.history_value(x, x0, k, c))
        del history[:-self.max_order]
        return self.update(x, k, c, history, generator)

    def correct(self, x, k, c, history, x0):
        """Hook: a corrector may revise x at t_k once the model output x0 there is known (UniC)."""
        return x

    def update(self, x, k, c, history, generator):
        """x at t_{k+1} from x at t_k and the model outputs history[-1] (at t_k), history[-2], …"""
        raise NotImplementedError

