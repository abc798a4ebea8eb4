"""Exact log-likelihood through the probability-flow ODE (Song et al. 2021, Sec. 4.3 and Appendix D.2).

    log p_0(x(0)) = log p_T(x(T)) + ∫_0^T ∇·h(x(t), t) dt,   h(x, t) = f(t) x − ½ g(t)² ∇log p_t(x),
integrated from eps to T. ∇·h comes from the Skilling–Hutchinson estimator E[εᵀ (∂h/∂x) ε]
(Rademacher or Gaussian ε, fixed along the path) or exactly (D backward passes, for small D).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._utils import check_batch, choice_error
from .sampling.ode_solvers import SOLVERS
from .sde import SDE, reverse_drift

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
    lo, hi = data_range
    if not hi > lo:
        raise ValueError(f"data_range must be (lo, hi) with hi > lo, got {data_range}")
    return 8.0 - math.log2(hi - lo)


def dequantize(u: torch.Tensor, generator=None, data_range=(-1.0, 1.0)) -> torch.Tensor:
    """Uniform dequantisation of uint8 data into data_range: y = lo + (hi − lo)(u + U[0,1))/256."""
    lo, hi = data_range
    noise = torch.rand(u.shape, generator=generator, device=u.device)
    return lo + (hi - lo) * (u.float() + noise) / 256.0


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
               generator: torch.Generator | None = None, bpd_offset: float = 0.0) -> LikelihoodResult:
    """log p_eps(x) by integrating the probability-flow ODE and its divergence from eps to T."""
    check_batch(x)
    if method not in SOLVERS:
        raise choice_error("method", method, SOLVERS)
    if trace not in TRACES:
        raise choice_error("trace", trace, TRACES)
    if noise not in NOISES:
        raise choice_error("noise", noise, NOISES)
    eps = sde.sampling_eps if eps is None else eps
    if not 0 < eps < sde.T:
        raise ValueError(f"eps must lie in (0, T) = (0, {sde.T}), got {eps}")
    shape, d = x.shape, x[0].numel()
    probe = torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
    if noise == "rademacher":
        probe = probe.sign()
    nfe = 0

    def func(t: float, y: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        xt = y[:, :d].reshape(shape)
        tt = torch.full((shape[0],), t, device=y.device, dtype=y.dtype)
        drift, div = _drift_and_divergence(score_fn, sde, xt, tt, trace, probe)
        return torch.cat([drift, div[:, None]], 1)

    y0 = torch.cat([x.flatten(1), x.new_zeros(shape[0], 1)], 1)
    with torch.no_grad():
        y1 = SOLVERS[method](func, y0, eps, sde.T, rtol=rtol, atol=atol)
    z = y1[:, :d].reshape(shape)
    logp = sde.prior_logp(z) + y1[:, d]
    return LikelihoodResult(logp=logp, bpd=-logp / (d * math.log(2)) + bpd_offset, z=z, nfe=nfe)
