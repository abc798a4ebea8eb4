"""The D3PM training loss L_vlb + λ L_CE (Austin et al. 2021, Eq. 5) and its per-step terms."""
from __future__ import annotations

import math

import torch

from .._utils import check_callable, check_real
from .process import D3PM, kl_categorical


def _float(logits: torch.Tensor) -> torch.Tensor:
    """Logits in at least float32 (bf16 under autocast is too coarse for log-probabilities)."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def vlb_term(denoise_fn, process: D3PM, x0: torch.Tensor, s: torch.Tensor, t: torch.Tensor, generator=None):
    """At x_t ~ q(x_t | x_0): (KL(q(x_s | x_t, x_0) ‖ p_θ(x_s | x_t)), −log p̃_θ(x_0 | x_t)), each per dimension
    [B, ...] in nats. For s = 0 the KL is −log p_θ(x_0 | x_t), the decoder term L_0."""
    x_t = process.q_sample(x0, t, generator)
    logits = _float(denoise_fn(x_t, t))
    if logits.shape != (*x0.shape, process.K0):
        raise ValueError(f"denoise_fn must return logits of shape {(*x0.shape, process.K0)} (one per data state), "
                         f"got {tuple(logits.shape)}")
    logq = process.posterior_logprobs(x0, x_t, s, t, dtype=logits.dtype)
    logp = process.reverse_logprobs(logits, x_t, s, t)
    ce = -torch.log_softmax(logits, -1).gather(-1, x0[..., None]).squeeze(-1)
    return kl_categorical(logq, logp), ce


class D3PMLoss:
    """L_λ = L_{t−1} + λ L_CE at t ~ U{1, …, T}, averaged over dimensions, in bits (Austin et al. 2021, Eq. 5).

    L_{t−1} is the VLB term of step t (the decoder term −log p_θ(x_0 | x_1) at t = 1); its mean over t is L_vlb/T,
    the scale of the authors' code, which fixes what λ means.
    """

    def __init__(self,
                 process: D3PM,               # the forward chain
                 hybrid_coeff: float = 0.001,  # λ, the weight of the auxiliary cross-entropy −log p̃_θ(x_0 | x_t)
                 ):
        if not isinstance(process, D3PM):
            raise TypeError(f"process must be a scoresde.discrete.D3PM, got {type(process).__name__}")
        self.process, self.hybrid_coeff = process, check_real(hybrid_coeff, "hybrid_coeff", 0)

    def __call__(self, denoise_fn, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_callable(denoise_fn, "denoise_fn", "denoise_fn(x_t, t) returning logits [B, ..., K]")
        t = torch.randint(1, self.process.T + 1, (len(x0),), generator=generator, device=x0.device)
        kl, ce = vlb_term(denoise_fn, self.process, x0, t - 1, t, generator)
        return (kl + self.hybrid_coeff * ce).mean() / math.log(2)
