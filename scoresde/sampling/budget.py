"""Budget-aware defaults: the options a low-NFE solver takes from `steps` when the user does not set them.

Measured by `python benchmarks/budget_rule.py` (docs/low-nfe.md): on five exact-score problems under the VP-SDE,
for each solver and step count, the configuration with the least geometric-mean ratio to each problem's best
configuration (lower_order_final from a second pass over the rows chosen, benchmarks/budget_rule.py
--lower-order-final). Each row reads "up to this many steps (= NFE, the final denoising step included)". eps is the
VP-SDE's time there (DDPM's linear β); on another SDE the end of the grid is the time with the same σ_t/α_t, so
every SDE stops at the same noise level, and eps = 1e-3 (the VP-SDE's sampling_eps) is each SDE's sampling_eps. An SDE with its own grid (EDM's σ-time) keeps its grid and σ_min.
An option the user gives always wins over the rule.
"""
from __future__ import annotations

import math

import torch

from ..sde import VPSDE
from .grids import t_of_log_snr

REFERENCE = VPSDE()  # the benchmark's SDE: β from 0.1 to 20, DDPM's linear schedule

# solver → rows (most steps, options); the last row covers every larger budget
RULES = {
    "unipc": [(4, dict(order=2, variant="bh1", grid="quadratic", eps=0.1)),
              (8, dict(order=3, variant="bh2", grid="quadratic", eps=0.03, lower_order_final=False)),
              (12, dict(order=3, variant="bh1", grid="quadratic", eps=0.01)),
              (17, dict(order=3, variant="bh2", grid="logsnr", eps=3e-3)),
              (math.inf, dict(order=3, variant="bh2", grid="logsnr", eps=1e-3))],
    "ipndm": [(4, dict(order=3, grid="quadratic", eps=0.1)),
              (7, dict(order=3, grid="quadratic", eps=0.01)),
              (10, dict(order=3, grid="quadratic", eps=3e-3)),
              (math.inf, dict(order=3, grid="quadratic", eps=1e-3))],
    "dpm_solver": [(3, dict(order=3, grid="quadratic", eps=0.1)),
                   (4, dict(order=3, grid="uniform", eps=0.03)),
                   (6, dict(order=3, grid="quadratic", eps=0.03, lower_order_final=False)),
                   (10, dict(order=2, grid="quadratic", eps=0.01)),
                   (17, dict(order=3, grid="logsnr", eps=3e-3, lower_order_final=False)),
                   (math.inf, dict(order=3, grid="logsnr", eps=1e-3))],
    "deis": [(3, dict(order=3, grid="quadratic", eps=0.1)),
             (4, dict(order=3, grid="uniform", eps=0.1, lower_order_final=False)),
             (6, dict(order=3, grid="uniform", eps=0.03, lower_order_final=False)),
             (8, dict(order=3, grid="logsnr", eps=0.01, lower_order_final=False)),
             (math.inf, dict(order=3, grid="karras", eps=1e-3, lower_order_final=False))],
}


def budget_defaults(name: str, steps: int) -> dict:
    """The rule's options for solver `name` at `steps` grid times ({} for a solver without a rule)."""
    for most, options in RULES.get(name, []):
        if steps <= most:
            return dict(options)
    return {}


def reference_sigma(eps: float) -> float:
    """σ_t/α_t of the benchmark's VP-SDE at time eps: the noise level the rule stops at."""
    alpha, sigma = REFERENCE.marginal_coeffs(torch.tensor([eps], dtype=torch.float64))
    return (sigma / alpha).item()


def end_time(sde, eps: float) -> float:
    """The time at which `sde` reaches the rule's noise level σ_t/α_t (eps itself on the reference VP-SDE),
    never below the SDE's own smallest time; the reference's own smallest time means sde.sampling_eps."""
    if eps == REFERENCE.sampling_eps:
        return sde.sampling_eps
    target = reference_sigma(eps)
    alpha, sigma = sde.marginal_coeffs(torch.tensor([eps], dtype=torch.float64))
    if abs((sigma / alpha).item() / target - 1) < 1e-12:
        return eps
    lam = torch.tensor([-math.log(target)], dtype=torch.float64)
    return max(t_of_log_snr(sde, lam, sde.T, sde.sampling_eps).item(), sde.sampling_eps)


def rule_table() -> str:
    """The rule as a Markdown table (docs/low-nfe.md shows it; a test keeps the two equal)."""
    lines = ["| solver | steps (= NFE) | order | grid | eps (VP) | σ_t/α_t at eps | other |", "|---|---|---:|---|---:|---:|---|"]
    for name, rows in RULES.items():
        low = 1
        for most, o in rows:
            span = f"≥ {low}" if most == math.inf else str(low) if most == low else f"{low}–{most}"
            other = ", ".join(f"{k}={v}" for k, v in o.items() if k not in ("order", "grid", "eps")) or "–"
            lines.append(f"| {name} | {span} | {o['order']} | {o['grid']} | {o['eps']:g} | "
                         f"{reference_sigma(o['eps']):.3f} | {other} |")
            low = most + 1
    return "\n".join(lines)
