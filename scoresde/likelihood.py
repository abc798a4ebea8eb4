"""Exact log-likelihood through the probability-flow ODE (Song et al. 2021, Sec. 4.3 and Appendix D.2).

    log p_0(x(0)) = log p_T(x(T)) + ∫_0^T ∇·h(x(t), t) dt,   h(x, t) = f(t) x − ½ g(t)² ∇log p_t(x),
integrated from eps to T. ∇·h comes from the Skilling–Hutchinson estimator E[εᵀ (∂h/∂x) ε]
(Rademacher or Gaussian ε, fixed along the path) or exactly (D backward passes, for small D).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ._utils import (ArgumentTypeError, check_batch, check_choice, check_generator, check_real,
                     describe)
from .score import as_score
from .score import CountedScore
from .sampling.ode_solvers import SOLVERS, check_tolerances
from .sde import SDE, check_sde, reverse_drift

TRACES = ("hutchinson", "exact")
NOISES = ("rademacher", "gaussian")  # Rademacher has lower variance: ε_i² = 1


@dataclass
class LikelihoodResult:
    logp: torch.Tensor  # log-density in nats, per sample [B]
    bpd: torch.Tensor  # bits per dimension, per sample [B], offset included
    z: torch.Tensor  # the latent x(T)
    nfe: int  # evaluations of the ODE's right-hand side (each is one score call plus its backward)


def uint8_bpd_offset(data_range=(-1.0, 1.0)) -> float:
    """Bits/dim to add when uint8 images u were mapped to y = lo + (hi − lo)(u + U[0,1))/256.

    log P(u) ≥ log p_y(y) + D log((hi − lo)/256), so bpd(u) = bpd(y) + 8 − log2(hi − lo): 7 for [−1, 1].
    """
    lo, hi = _check_range(data_range)
    return 8.0 - math.log2(hi - lo)


def dequantize(u: torch.Tensor, generator=None, data_range=(-1.0, 1.0)) -> torch.Tensor:
    """Uniform dequantisation of uint8 data into data_range: y = lo + (hi − lo)(u + U[0,1))/256."""
    lo, hi = _check_range(data_range)
    if not isinstance(u, torch.Tensor) or u.is_floating_point() or u.is_complex() or u.dtype == torch.bool:
        raise ValueError(f"u must be an integer tensor of pixel values 0…255 (uint8), got {describe(u)}")
    check_generator(generator, u.device)
    noise = torch.rand(u.shape, generator=generator, device=u.device)
    return lo + (hi - lo) * (u.float() + noise) / 256.0


def _check_range(data_range) -> tuple[float, float]:
    if isinstance(data_range, str) or not isinstance(data_range, Sequence) or len(data_range) != 2:
        raise ArgumentTypeError(f"data_range must be a pair (lo, hi), got {describe(data_range)}")
    lo, hi = (check_real(v, "data_range") for v in data_range)
    if not hi > lo:
        raise ValueError(f"data_range must be (lo, hi) with hi > lo, got {data_range}")
    return lo, hi


def _drift_and_divergence(score_fn, sde, x, t, trace, probe):
    """h(x, t) = f x − ½ g² s and ∇·h: Hutchinson's εᵀ(∂h/∂x)ε, or the exact trace (D backward passes).

    The estimator is applied to all of h, not to s alone: near T, ∂h/∂x = f I − ½ g² ∂s/∂x → 0, so
    its variance vanishes there, whereas D f − ½ g² εᵀ(∂s/∂x)ε would carry ½ β (‖ε‖² − D) of noise.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        h = reverse_drift(sde, score_fn, x, t, 0.5).flatten(1)
        if trace == "hutchinson":
            (vjp,) = torch.autograd.grad(h, x, probe.flatten(1))
            return h.detach(), (vjp * probe).flatten(1).sum(1)
        div = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for i in range(h.shape[1]):
            (grad,) = torch.autograd.grad(h[:, i].sum(), x, retain_graph=i < h.shape[1] - 1)
            div = div + grad.flatten(1)[:, i]
        return h.detach(), div


def likelihood(score_fn, sde: SDE, x: torch.Tensor, *, eps: float | None = None, method: str = "dopri5",
               rtol: float = 1e-5, atol: float = 1e-5, trace: str = "hutchinson", noise: str = "rademacher",
               generator: torch.Generator | None = None, bpd_offset: float = 0.0,
               max_nfe: int = 10_000) -> LikelihoodResult:
    """log p_eps(x) by integrating the probability-flow ODE and its divergence from eps to T.

    Fails with a ValueError naming the time reached as soon as the drift turns non-finite, or after
    max_nfe evaluations.
    """
    score_fn = as_score(score_fn)
    check_sde(sde)
    check_batch(x, finite=True)
    if x.shape[0] == 0:
        raise ValueError(f"x must hold at least one sample [B >= 1, ...], got {describe(x)}")
    check_choice(method, "method", SOLVERS)
    check_choice(trace, "trace", TRACES)
    check_choice(noise, "noise", NOISES)
    check_tolerances(rtol, atol, max_nfe)
    check_generator(generator, x.device)
    check_real(bpd_offset, "bpd_offset")
    eps = sde.sampling_eps if eps is None else eps
    eps = check_real(eps, "eps", 0, sde.T, inclusive=(False, False), symbol="(0, T)")
    # A prior N(μ, Σ): integrate the whitened x̃ = L⁻¹(x − μ) under the standard SDE; log p(x) = log p̃(x̃) − log|det L|,
    # which prior_logp of the latent μ + L z̃ includes (identities for the standard prior).
    score = CountedScore(sde.whitened_score(score_fn))  # counts calls, and checks the output's shape
    unwhiten, prior_logp = sde.unwhiten, sde.prior_logp
    sde, x_white = sde.standard, sde.whiten(x)
    shape, d = x.shape, x[0].numel()
    probe = torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
    if noise == "rademacher":
        probe = probe.sign()

    def func(t: float, y: torch.Tensor) -> torch.Tensor:
        xt = y[:, :d].reshape(shape)
        tt = torch.full((shape[0],), t, device=y.device, dtype=y.dtype)
        drift, div = _drift_and_divergence(score, sde, xt, tt, trace, probe)
        return torch.cat([drift, div[:, None]], 1)

    y0 = torch.cat([x_white.flatten(1), x.new_zeros(shape[0], 1)], 1)
    with torch.no_grad():
        y1 = SOLVERS[method](func, y0, eps, sde.T, rtol=rtol, atol=atol, max_nfe=max_nfe)
    z = unwhiten(y1[:, :d].reshape(shape))
    logp = prior_logp(z) + y1[:, d]
    return LikelihoodResult(logp=logp, bpd=-logp / (d * math.log(2)) + bpd_offset, z=z, nfe=score.nfe)
