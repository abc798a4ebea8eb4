"""Time grids optimised for the model (Chen et al. 2024, "On the Trajectory Regularity of ODE-based Diffusion
Sampling", GITS, §4): a dynamic programme over a fine grid, on calibration trajectories of the model itself.

1. Roll out `samples` probability-flow trajectories with a fine teacher (DPM-Solver++(3M) on `refine` × `fine`
   log-SNR steps, from seed `seed`) and keep the states x_i and model outputs x̂_0,i at the `fine` + 1 points.
2. The cost of a coarse step from fine point i to j is the local error of the chosen solver: one of its steps
   from the teacher's x_i, with the teacher's outputs at the points the path visited before as its history,
   against the teacher's x_j (the L2 norm per sample, averaged).
3. The grid of K = steps − 1 steps from T to eps with the least accumulated cost, by dynamic programming
   forward over (steps taken, fine point). A one-step solver's cost is path-free and the optimum is exact
   (GITS scores every solver's grid this way, with Euler in σ, i.e. DDIM); a multistep solver's history is
   that of the cheapest path to i, a greedy choice.
The calibration costs samples × (refine + 1) × fine network calls, once per (model, solver, steps); a Run
caches its grids in WORKDIR/grids/.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

from .._utils import check_positive_int
from .base import CountedScore, tweedie
from .grids import make_grid

FINE, REFINE, SAMPLES = 64, 4, 64  # fine grid points − 1, teacher steps per fine step, calibration trajectories


def check_optimizes_grid(sampler, given: str = "") -> None:
    """Refuse a sampler that cannot take one step from given states (its `optimizes_grid` is False)."""
    if not sampler.optimizes_grid:
        raise ValueError(f"grid='optimized' needs a sampler that takes one step from given states (ddim with eta=0, "
                         f"dpm_solver, deis, unipc, ipndm), got {sampler.name!r}{given}")


def calibration(score_fn, sde, shape, eps: float, fine: int = FINE, refine: int = REFINE, samples: int = SAMPLES,
                seed: int = 0, device=None, dtype=None):
    """The fine grid ts [fine + 1] and the teacher's states xs and outputs x0s there, each [fine + 1, samples, ...]
    (x0s[-1], at eps, is not needed and left zero), and the network calls it took."""
    from .dpm_solver import DPMSolverSampler  # the teacher; imported here, as dpm_solver imports this package's base

    teacher_ts = make_grid("logsnr", sde, sde.T, eps, fine * refine + 1)
    states = []
    keep = lambda x, t, k: states.append(x) if (k + 1) % refine == 0 else None  # noqa: E731 -- the fine points
    teacher = DPMSolverSampler(order=3, ts=teacher_ts, denoise=False, progress=False, callback=keep,
                               lower_order_final=False)
    g = torch.Generator(device=device or "cpu").manual_seed(seed)
    x_T = sde.prior_sampling((samples, *shape), generator=g, device=device, dtype=dtype)
    g = torch.Generator(device=device or "cpu").manual_seed(seed)  # the teacher draws the same x_T
    _, nfe = teacher(score_fn, sde, (samples, *shape), generator=g, device=device, dtype=dtype)
    ts = teacher_ts[::refine]
    xs = torch.stack([x_T, *states])
    alpha, sigma = sde.marginal_coeffs(ts)
    score = CountedScore(score_fn)
    with torch.no_grad():
        x0s = torch.stack([tweedie(score, xs[i], ts[i].to(xs), alpha[i], sigma[i]) for i in range(fine)]
                          + [torch.zeros_like(x_T)])
    return ts, xs, x0s, samples * (nfe + score.nfe)


def dynamic_programme(cost, fine: int, K: int) -> list[int]:
    """Fine indices 0 = i_0 < … < i_K = fine minimising Σ_k cost(path, j) forward, where cost(path, j) is the
    cost of step k from path[-1] to j after visiting `path`; each state keeps its cheapest path."""
    best = {0: (0.0, [0])}  # fine point → (accumulated cost, path) after k steps
    for k in range(K):
        last = fine - (K - k - 1)  # leave room for the remaining steps; the final step lands on `fine`
        nxt = {}
        for i, (v, path) in best.items():
            for j in ([fine] if k == K - 1 else range(i + 1, last)):
                c = v + cost(path, j, k)
                if j not in nxt or c < nxt[j][0]:
                    nxt[j] = (c, path + [j])
        best = nxt
    return best[fine][1]


def optimized_grid(sampler, score_fn, sde, shape, *, eps: float | None = None, fine: int = FINE,
                   refine: int = REFINE, samples: int = SAMPLES, seed: int = 0, device=None, dtype=None,
                   log=None) -> torch.Tensor:
    """GITS' grid of `sampler.steps` times from T to eps for this sampler and score: give it to any sampler as ts."""
    check_optimizes_grid(sampler)
    fine, refine, samples = (check_positive_int(v, n) for v, n in ((fine, "fine"), (refine, "refine"), (samples, "samples")))
    K = sampler.steps - 1
    if not 1 <= K <= fine:
        raise ValueError(f"an optimized grid of {sampler.steps} times needs 2 <= steps <= fine + 1 = {fine + 1}")
    eps = sde.sampling_eps if eps is None else eps
    ts, xs, x0s, nfe = calibration(score_fn, sde, shape, eps, fine, refine, samples, seed, device, dtype)
    orders = sampler.step_orders_for(K)

    def cost(path, j, k):
        p = orders[k]
        idx = (path + [j])[-(p + 1):]
        x = sampler.local_step(sde, ts[idx], xs[idx[:-1]], x0s[idx[:-1]], p)
        return (x - xs[j]).flatten(1).norm(dim=1).mean().item()

    path = dynamic_programme(cost, fine, K)
    (log or _stderr)(f"optimized grid for {sampler.name} with {sampler.steps} steps: calibrated on {samples} "
                     f"trajectories, {nfe} network calls")
    return ts[path]


def _stderr(line):
    print(line, file=sys.stderr)


def cached_grid(folder: Path, key: dict, compute) -> torch.Tensor:
    """The grid stored under `key` in folder (JSON, written atomically), or compute() and store it."""
    text = json.dumps(key, sort_keys=True, default=str)
    path = Path(folder) / f"grid_{hashlib.sha1(text.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("key") == json.loads(text):
            return torch.tensor(stored["ts"], dtype=torch.float64)
    ts = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": json.loads(text), "ts": ts.tolist()}, indent=1))
    os.replace(tmp, path)
    return ts


__all__ = ["optimized_grid", "calibration", "dynamic_programme", "cached_grid", "check_optimizes_grid"]
