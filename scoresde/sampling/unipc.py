"""UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework"), data prediction, orders 1–3.

From t_k to t_{k+1} with h = λ_{k+1} − λ_k, m_j the model's x̂_0 j steps back, r_j = (λ_{k−j} − λ_k)/h < 0
and D_j = (m_j − m_0)/r_j (see exponential.py), the UniP-p predictor is
    x_{k+1} = (σ_{k+1}/σ_k) x_k − α_{k+1} (e^{−h} − 1) m_0 − α_{k+1} B(h) Σ_{j<p} ρ^P_j D_j
and the UniC-p corrector, once the model has been evaluated at the predicted point (m_new, no extra NFE),
    x_{k+1}^c = (σ_{k+1}/σ_k) x_k − α_{k+1} (e^{−h} − 1) m_0 − α_{k+1} B(h) (Σ_{j<p} ρ^C_j D_j + ρ^C_p (m_new − m_0)).
ρ solves R ρ = b with R_{ij} = r_j^{i} (r_p = 1), b_i = i! ψ_{i+1}(−h)/B(h), ψ_1(x) = (e^x − 1)/x − 1,
ψ_{i+1} = ψ_i/x − 1/(i+1)!; ρ = ½ for UniP-2 and UniC-1 (Zhao et al., Algorithms 1–2). B(h) = h ("bh1") or
e^h − 1 ("bh2"), with h → −h in data prediction. UniP-p has order p, UniPC-p order p + 1. The last step is
not corrected: the model call there is the final Tweedie step (or is not made, with denoise=False).
"""
from __future__ import annotations

import math

import torch

from .._utils import check_bool, check_choice
from .exponential import ExponentialIntegrator

VARIANTS = ("bh1", "bh2")


def unipc_rhos(h: float, r: list[float], variant: str):
    """B(h), ρ^P (length p − 1) and ρ^C (length p) for one step of order p = len(r) + 1."""
    x = -h  # data prediction integrates in −λ
    B = x if variant == "bh1" else math.expm1(x)
    p, psi, b = len(r) + 1, math.expm1(x) / x - 1, []
    for i in range(1, p + 1):
        b.append(psi * math.factorial(i) / B)
        psi = psi / x - 1 / math.factorial(i + 1)
    R = torch.tensor([[rj ** i for rj in [*r, 1.0]] for i in range(p)], dtype=torch.float64)
    b = torch.tensor(b, dtype=torch.float64)
    half = torch.tensor([0.5], dtype=torch.float64)
    rho_p = b[:0] if p == 1 else half if p == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
    rho_c = half if p == 1 else torch.linalg.solve(R, b)
    return B, rho_p, rho_c


class UniPCSampler(ExponentialIntegrator):
    """UniP-p predictor, with the UniC-p corrector unless corrector=False."""

    name = "unipc"  # default grid logsnr, as in the paper; measured 4% better than quadratic at order 2
    one_step_when = " (order=1, corrector=False)"

    @property
    def one_step(self) -> bool:
        return self.order == 1 and not self.corrector

    budget_rule = "unipc"  # with only steps given, order, variant, grid and eps follow budget.RULES

    def __init__(self, variant: str | None = None, corrector: bool = True, **kwargs):
        super().__init__(**kwargs)
        variant = self.rule.get("variant", "bh2") if variant is None else variant
        self.variant = check_choice(variant, "variant", VARIANTS)  # B(h) = h (bh1) or e^h − 1 (bh2)
        self.corrector = check_bool(corrector, "corrector")  # apply UniC after each step (no extra NFE)

    def prepare(self, sde, ts):
        c = super().prepare(sde, ts)
        n, lam = len(ts) - 1, c["lam"]
        f64 = dict(dtype=torch.float64)
        c["BH"], c["rk"], c["rho_p"], c["rho_c"] = torch.zeros(n, **f64), torch.ones(n, 2, **f64), torch.zeros(n, 2, **f64), torch.zeros(n, 3, **f64)
        for k in range(n):
            h = (lam[k + 1] - lam[k]).item()
            r = [((lam[k - j] - lam[k]) / h).item() for j in range(1, c["order"][k])]
            B, rho_p, rho_c = unipc_rhos(h, r, self.variant)
            c["BH"][k] = c["alpha"][k + 1].item() * B
            c["rk"][k, :len(r)], c["rho_p"][k, :len(rho_p)], c["rho_c"][k, :len(rho_c)] = torch.tensor(r, **f64), rho_p, rho_c
        return c

    def differences(self, k, c, history):
        m0 = history[-1]
        return m0, [(history[-1 - j] - m0) / c["rk"][k, j - 1] for j in range(1, c["order"][k])]

    def update(self, x, k, c, history, generator):
        c["x_prev"] = x  # the corrector of this step starts again from here
        m0, D = self.differences(k, c, history)
        x_next = c["A"][k] * x + c["B"][k] * m0
        return x_next - c["BH"][k] * sum(c["rho_p"][k, j] * d for j, d in enumerate(D)) if D else x_next

    def correct(self, x, k, c, history, x0):
        if not self.corrector or k == 0:
            return x
        m0, D = self.differences(k - 1, c, history)
        p = c["order"][k - 1]
        res = sum((c["rho_c"][k - 1, j] * d for j, d in enumerate(D)), c["rho_c"][k - 1, p - 1] * (x0 - m0))
        return c["A"][k - 1] * c["x_prev"] + c["B"][k - 1] * m0 - c["BH"][k - 1] * res
