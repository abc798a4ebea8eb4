"""The shared sampler loop: time grid, prior draw, NFE counting, checks, callback, trajectory, denoising.

Every sampler is called the same way:  x, nfe = sampler(score_fn, sde, shape, generator=g, device=None).
A sampler moves x along `ts` (`steps` times from T down to eps), one `step` per interval, then,
with denoise=True, returns Tweedie's estimate E[x_0 | x_eps] = (x + σ² ∇log p)/α (one more NFE).
"""
from __future__ import annotations

import torch

from .._utils import check_generator, check_positive_int, progress
from ..sde import SDE


class CountedScore:
    """Wraps score_fn: counts every call (the true NFE) and rejects wrong shapes and non-finite output."""

    def __init__(self, score_fn):
        self.score_fn, self.nfe = score_fn, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.score_fn(x, t.expand(x.shape[0]) if t.ndim == 0 else t)
        self.nfe += 1
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"score_fn must return a tensor shaped like x {tuple(x.shape)}, got {got}")
        if self.nfe == 1:
            check_finite(out, "score_fn returned non-finite values on its first call")
        return out


def check_finite(x: torch.Tensor, message: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(message)


def uniform_grid(T: float, eps: float, steps: int) -> torch.Tensor:
    """`steps` times from T down to eps, in float64."""
    return torch.linspace(T, eps, steps, dtype=torch.float64)


def grid_marginals(sde: SDE, ts: torch.Tensor, discrete: bool | None):
    """α, σ on the grid: DDPM's discrete ᾱ_i when asked (None: when every time is a DDPM step t_i = iT/N)."""
    on_lattice = hasattr(sde, "discrete_marginal_coeffs") and bool(
        ((ts * sde.N / sde.T - torch.round(ts * sde.N / sde.T)).abs() < 1e-6).all())
    if discrete and not on_lattice:
        raise ValueError("discrete=True needs a VPSDE and a grid of DDPM steps t_i = i*T/N "
                         f"(for example steps={getattr(sde, 'N', '?')} with eps=T/N)")
    return sde.discrete_marginal_coeffs(ts) if (on_lattice if discrete is None else discrete) else sde.marginal_coeffs(ts)


class Sampler:
    """Base class: subclasses implement `prepare` (precompute per-step coefficients) and `step`."""

    name = "base"
    stochastic = True  # draws noise during the moves
    discrete = False  # use DDPM's discrete ᾱ_i (None: when the grid is DDPM's steps); see grid_marginals

    def __init__(self, steps: int = 1000, eps: float | None = None, ts=None, denoise: bool = True,
                 progress: bool = True, callback=None, return_trajectory: bool = False):
        self.steps = check_positive_int(steps, "steps")  # number of grid times, T … eps
        if ts is not None and eps is not None:
            raise ValueError("give either eps or ts, not both: a user grid ts ends at its own eps")
        if eps is not None and not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps, self.ts = eps, ts  # smallest time; or a user grid, decreasing in (0, T]
        self.denoise = denoise  # end with Tweedie's formula at eps
        self.progress, self.callback, self.return_trajectory = progress, callback, return_trajectory

    def time_grid(self, sde: SDE) -> torch.Tensor:
        """The decreasing float64 grid T … eps (or the user's ts), validated."""
        if self.ts is None:
            eps = sde.sampling_eps if self.eps is None else self.eps
            if not eps < sde.T:
                raise ValueError(f"eps must be < T = {sde.T}, got {eps}")
            return uniform_grid(sde.T, eps, self.steps)
        ts = torch.as_tensor(self.ts, dtype=torch.float64).cpu()
        if ts.ndim != 1 or len(ts) < 1 or not bool((ts.diff() < 0).all()):
            raise ValueError(f"ts must be a 1-D strictly decreasing sequence of times, got {ts.tolist()}")
        if not (ts[-1] > 0 and ts[0] <= sde.T):
            raise ValueError(f"ts must lie in (0, T] = (0, {sde.T}], got [{ts[-1].item()}, {ts[0].item()}]")
        return ts

    def prepare(self, sde: SDE, ts: torch.Tensor) -> dict:
        """Per-step coefficient tables, computed once in float64 on the host."""
        return {}

    def step(self, score: CountedScore, sde: SDE, x: torch.Tensor, k: int, c: dict, generator) -> torch.Tensor:
        """Move x from ts[k] to ts[k + 1]."""
        raise NotImplementedError

    def finish(self, score, sde, x, c, generator):
        """Hook at eps before denoising (the PC sampler runs its last corrector here)."""
        return x

    def integrate(self, score, sde, x, ts, generator):
        """Run the moves along ts; solvers that are not step-by-step (adaptive ODE, torchsde) override this."""
        c = {k: v.to(x.device, x.dtype) if isinstance(v, torch.Tensor) else v for k, v in self.prepare(sde, ts).items()}
        c["t"] = ts.to(x.device, x.dtype)
        for k in progress(range(len(ts) - 1), self.progress, desc=self.name):
            x = self.step(score, sde, x, k, c, generator)
            self._record(x, c["t"][k + 1], k)
        return self.finish(score, sde, x, c, generator)

    def _record(self, x, t, k):
        if self.callback is not None:
            self.callback(x, t, k)
        if self._trajectory is not None:
            self._trajectory.append(x)

    def __call__(self, score_fn, sde: SDE, shape, generator: torch.Generator | None = None,
                 device=None, dtype: torch.dtype | None = None):
        """Draw samples of `shape` = [B, ...]: returns (x, nfe), or (x, nfe, trajectory) if asked."""
        if not isinstance(sde, SDE):
            raise ValueError(f"sde must be a scoresde.SDE, got {type(sde).__name__}")
        shape = tuple(shape)
        if len(shape) < 2 or any(not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"shape must be [B, ...] with at least 2 positive dims (use [B, 1] for scalars), got {shape}")
        device = torch.device(device if device is not None else (generator.device if generator is not None else "cpu"))
        check_generator(generator, device)
        dtype = dtype or torch.get_default_dtype()
        ts, score = self.time_grid(sde), CountedScore(score_fn)
        with torch.no_grad():
            x = sde.prior_sampling(shape, generator=generator, device=device, dtype=dtype)
            self._trajectory = [x] if self.return_trajectory else None
            x = self.integrate(score, sde, x, ts, generator)
            if self.denoise:
                alpha, sigma = grid_marginals(sde, ts, self.discrete)  # the whole grid decides, as for the moves
                x = tweedie(score, x, ts[-1], alpha[-1], sigma[-1])
            check_finite(x, f"{self.name} sampler produced non-finite samples after {score.nfe} score evaluations; "
                            "check that score_fn is finite on the whole time range")
        if self.return_trajectory:
            traj, self._trajectory = torch.stack(self._trajectory + ([x] if self.denoise else [])), None
            return x, score.nfe, traj
        return x, score.nfe


def tweedie(score, x: torch.Tensor, t, alpha, sigma) -> torch.Tensor:
    """E[x_0 | x_t] = (x_t + σ_t² ∇log p_t(x_t)) / α_t (Tweedie's formula; Efron 2011), scalar t, α_t, σ_t."""
    alpha, sigma, t = (torch.as_tensor(v, dtype=x.dtype, device=x.device) for v in (alpha, sigma, t))
    return (x + sigma**2 * score(x, t)) / alpha


def sqrt_(v: torch.Tensor) -> torch.Tensor:
    return v.clamp(min=0).sqrt()

