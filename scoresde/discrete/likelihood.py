"""Negative log-likelihood bound of a D3PM in bits per dimension: the variational bound of Austin et al. 2021, §2."""
from __future__ import annotations

import math

import torch

from .._utils import progress
from .losses import vlb_term
from .process import D3PM


@torch.no_grad()
def nll_bits_per_dim(denoise_fn, process: D3PM, x0: torch.Tensor, steps: int | None = None, generator=None,
                     progress_bar: bool = False):
    """L_vlb = L_T + Σ_i L_{t_{i−1}} (one x_t draw per term) over the chain observed at T = t_M > … > t_0 = 0, per
    sample in bits/dim: returns (bits/dim [B], NFE). With steps = T (default) this is the usual T-step bound; any
    coarser grid is the bound of the same model run with skips, an upper bound on −log p_θ(x_0) of that sampler."""
    grid = process.time_grid(steps, device=x0.device)
    total = process.prior_kl(x0).flatten(1).sum(1).double()
    ones = torch.ones(len(x0), dtype=torch.long, device=x0.device)
    for t, s in progress(list(zip(grid[:-1].tolist(), grid[1:].tolist())), progress_bar, desc="nll"):
        kl, _ = vlb_term(denoise_fn, process, x0, s * ones, t * ones, generator)
        total += kl.flatten(1).sum(1).double()
    return total / (x0[0].numel() * math.log(2)), len(grid) - 1
