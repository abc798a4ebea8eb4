"""The reverse-process variance Σ of p_θ(x_s | x_t) = N(μ_θ, Σ): fixed β or β̃, learned, or analytic.

On a grid step s < t with marginals (α, σ), a = α_t/α_s, β = σ_t² − a² σ_s² (the forward step's variance;
DDPM's β_t when s = t − 1, the respaced β = 1 − ᾱ_t/ᾱ_s otherwise) and β̃ = β σ_s²/σ_t²:
    "beta_tilde"  Σ = β̃                                        (Ho et al. 2020, σ_t² = β̃_t)
    "beta"        Σ = β                                        (Ho et al. 2020, σ_t² = β_t)
    "learned"     Σ = exp(v log β + (1 − v) log β̃)            (Nichol & Dhariwal 2021, Eq. 15)
    "analytic"    Σ = β̃ + (α_s σ_t/α_t − √(σ_s² − β̃))² (1 − σ_t² Γ_t),  Γ_t = E‖∇log p_t‖²/d
                                                               (Bao et al. 2022, Analytic-DPM, Theorem 1)
A model declares a learned variance on its Score (`get_score_fn(..., learned_variance=True)`): its
`learned_variance` is True and `score_and_v(x, t)` returns the score and v in one call.
"""
from __future__ import annotations

import torch

from ._utils import append_dims, check_batch, check_choice, check_generator, check_positive_int, noise_like
from .score import as_score

VARIANCES = ("beta_tilde", "beta", "learned", "analytic")


def learned_variance(score_fn) -> bool:
    """Whether the score declares a learned variance (`Score.learned_variance`, with `score_and_v`)."""
    return as_score(score_fn).learned_variance


def resolve_variance(variance: str | None, score_fn) -> str:
    """The variance to use: None means the model's own ("learned" when it declares one, else "beta_tilde")."""
    if variance is None:
        return "learned" if learned_variance(score_fn) else "beta_tilde"
    check_choice(variance, "variance", VARIANCES)
    if variance == "learned" and not learned_variance(score_fn):
        raise ValueError("variance='learned' needs a score function that declares a learned variance "
                         "(get_score_fn(..., learned_variance=True)); this one does not")
    return variance


def interpolated_log_variance(v: torch.Tensor, log_beta, log_beta_tilde) -> torch.Tensor:
    """log Σ = v log β + (1 − v) log β̃ (Nichol & Dhariwal 2021, Eq. 15); v is the network's raw output."""
    return v * log_beta + (1 - v) * log_beta_tilde


def analytic_variance(alpha_t, sigma_t, alpha_s, sigma_s, gamma):
    """Σ* = β̃ + (α_s σ_t/α_t − √(σ_s² − β̃))² (1 − σ_t² Γ_t) (Bao et al. 2022, Theorem 1 with λ² = β̃).

    Γ_t = E‖s_θ(x_t, t)‖²/d. The factor 1 − σ_t² Γ_t = E‖x_0 − E[x_0|x_t]‖² α_t²/(σ_t² d) is clipped to [0, 1],
    the range it has for the true score, so that β̃ ≤ Σ* ≤ β̃ + (…)² σ_t²/α_t² (Bao et al. 2022, Theorem 2).
    """
    a = alpha_t / alpha_s
    beta = sigma_t**2 - (a * sigma_s) ** 2
    beta_tilde = beta * sigma_s**2 / sigma_t**2
    coef = alpha_s * sigma_t / alpha_t - (sigma_s**2 - beta_tilde).clamp(min=0).sqrt()
    return beta_tilde + coef**2 * (1 - sigma_t**2 * gamma).clamp(0, 1)


@torch.no_grad()
def score_second_moment(score_fn, sde, x0: torch.Tensor, ts: torch.Tensor, generator=None,
                        batch_size: int = 256) -> torch.Tensor:
    """Γ_t = E_{x_0, x_t}‖s_θ(x_t, t)‖²/d at each time of ts, by Monte Carlo over the data x0 (Bao et al. 2022, Eq. 8).

    `sde` must be the marginals the model sees (`sampling.grids.for_model`); one draw of x_t per data point.
    """
    check_batch(x0, "x0", finite=True)
    check_generator(generator, x0.device)
    check_positive_int(batch_size, "batch_size")
    d = x0[0].numel()
    gamma = torch.zeros(len(ts), dtype=torch.float64)
    for k, t in enumerate(ts.tolist()):
        total = 0.0
        for i in range(0, len(x0), batch_size):
            x = x0[i:i + batch_size]
            tt = torch.full((len(x),), t, device=x.device, dtype=x.dtype)
            alpha, sigma = sde.marginal_coeffs(tt)
            x_t = append_dims(alpha, x.ndim) * x + append_dims(sigma, x.ndim) * noise_like(x, generator)
            total += score_fn(x_t, tt).double().flatten(1).pow(2).sum().item()
        gamma[k] = total / (len(x0) * d)
    return gamma


def log_beta_pair(beta: torch.Tensor, beta_tilde: torch.Tensor):
    """log β and log β̃ with β̃ = 0 (the step to t = 0) replaced by the next β̃, as Nichol & Dhariwal clip it.

    `beta`, `beta_tilde` run along a grid from large t to small t; only a final zero may be replaced.
    """
    log_bt = beta_tilde.clamp(min=torch.finfo(beta_tilde.dtype).tiny).log()
    if len(beta_tilde) > 1 and float(beta_tilde[-1]) == 0.0:
        log_bt = torch.cat([log_bt[:-1], log_bt[-2:-1]])
    return beta.log(), log_bt

