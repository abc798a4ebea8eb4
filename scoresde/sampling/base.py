"""The shared sampler loop: time grid, prior draw, NFE counting, checks, callback, trajectory, denoising.

Every sampler is called the same way:  x, nfe = sampler(score_fn, sde, shape, generator=g, device=None).
A sampler moves x along `ts` (`steps` times from T down to eps on its `grid`), one `step` per interval,
then, with denoise=True, returns Tweedie's estimate E[x_0 | x_eps] = (x + σ² ∇log p)/α (one more NFE).
The score's declared time convention (`parameterization.time_convention`) picks the marginals α, σ
the sampler sees: ᾱ(t) for a continuous model, DDPM's ᾱ_i on DDPM's steps for a discrete one.
"""
from __future__ import annotations

import torch

from .._utils import SampleSeeds, check_generator, check_positive_int, choice_error, progress
from ..sde import SDE
from .grids import GRIDS, for_model, make_grid


class CountedScore:
    """Wraps score_fn: counts every call (the true NFE) and rejects wrong shapes and non-finite output."""

    def __init__(self, score_fn):
        self.score_fn, self.nfe = score_fn, 0
        self.continuous = getattr(score_fn, "continuous", True)  # the wrapped score's time convention, kept visible

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


def noise_source(generator, seeds, batch: int, device):
    """The sampler's noise: `generator`, or one generator per sample when `seeds` are given."""
    if seeds is None:
        check_generator(generator, device)
        return generator
    if generator is not None:
        raise ValueError("give either generator or seeds, not both")
    noise = SampleSeeds(seeds, device)
    if len(noise) != batch:
        raise ValueError(f"seeds must give one seed per sample: {len(noise)} seeds for a batch of {batch}")
    return noise


class Sampler:
    """Base class: subclasses implement `prepare` (precompute per-step coefficients) and `step`."""

    name = "base"
    stochastic = True  # draws noise during the moves
    default_grid = "uniform"  # the grid when none is given (chosen per sampler from measurement)

    def __init__(self, steps: int = 1000, eps: float | None = None, ts=None, grid: str | None = None, rho: float = 7.0,
                 denoise: bool = True, progress: bool = True, callback=None, return_trajectory: bool = False):
        self.steps = check_positive_int(steps, "steps")  # number of grid times, T … eps
        self.grid = grid or self.default_grid  # uniform, logsnr, karras or quadratic (see grids.py)
        if self.grid not in GRIDS:
            raise choice_error("grid", self.grid, GRIDS)
        if not rho > 0:
            raise ValueError(f"rho must be > 0, got {rho}")
        self.rho = float(rho)  # ρ of the Karras grid
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
            return make_grid(self.grid, sde, sde.T, eps, self.steps, self.rho)
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
                 device=None, dtype: torch.dtype | None = None, seeds=None):
        """Draw samples of `shape` = [B, ...]: returns (x, nfe), or (x, nfe, trajectory) if asked.

        seeds: one integer per sample instead of `generator`; sample i then depends on seeds[i] only.
        """
        if not isinstance(sde, SDE):
            raise ValueError(f"sde must be a scoresde.SDE, got {type(sde).__name__}")
        shape = tuple(shape)
        if len(shape) < 2 or any(not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"shape must be [B, ...] with at least 2 positive dims (use [B, 1] for scalars), got {shape}")
        device = torch.device(device if device is not None else (generator.device if generator is not None else "cpu"))
        generator = noise_source(generator, seeds, shape[0], device)
        dtype = dtype or torch.get_default_dtype()
        score = CountedScore(score_fn)
        sde, ts = for_model(sde, self.time_grid(sde), score)
        with torch.no_grad():
            x = sde.prior_sampling(shape, generator=generator, device=device, dtype=dtype)
            self._trajectory = [x] if self.return_trajectory else None
            x = self.integrate(score, sde, x, ts, generator)
            if self.denoise:
                alpha, sigma = sde.marginal_coeffs(ts[-1:])
                x = tweedie(score, x, ts[-1], alpha[0], sigma[0])
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

