"""The shared sampler loop: time grid, prior draw, NFE counting, checks, callback, trajectory, denoising.

Every sampler is called the same way:  x, nfe = sampler(score_fn, sde, shape, generator=g, device=None).
A sampler moves x along `ts` (`steps` times from T down to eps on its `grid`), one `step` per interval,
then, with denoise=True, returns Tweedie's estimate E[x_0 | x_eps] = (x + σ² ∇log p)/α (one more NFE).
The score's declared time convention (`parameterization.time_convention`) picks the marginals α, σ
the sampler sees: ᾱ(t) for a continuous model, DDPM's ᾱ_i on DDPM's steps for a discrete one.
"""
from __future__ import annotations

import torch

from .._utils import (ArgumentTypeError, SampleSeeds, check_bool, check_callable, check_choice, check_dtype,
                      check_positive_int, check_real, check_shape, describe,
                      progress, resolve_device)
from ..sde import SDE, check_sde
from ..respace import respaced_times
from ..score import CountedScore, as_score
from ..parameterization import time_convention
from .budget import budget_defaults, end_time as budget_end_time
from .grids import GRIDS, for_model, make_grid

OPTIMIZED = "optimized"  # grid= for GITS' model-optimised grid (optimized.py), computed when the sampler is called

CHECK_EVERY = 10  # fixed-step samplers check the state for NaN/inf every this many steps (one host sync each)


def noise_source(generator, seeds, batch: int, device):
    """The sampler's noise: `generator`, or one generator per sample when `seeds` are given."""
    if seeds is None:
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
    kind = "?"  # family shown by `scoresde compare`: discrete, SDE, SDE + corrector or ODE
    stochastic = True  # draws noise during the moves
    adaptive = False  # True when the solver picks its own steps (then `steps` does not apply)
    default_grid = "uniform"  # the grid when none is given (chosen per sampler from measurement)
    # Whether each move goes from x alone, one grid interval at a time, so conditioning by projection between
    # moves (inpainting, colourisation, ILVR) applies: None never, "" always, else the options that make it so.
    one_step_when: str | None = None
    needs_data = False  # True: it needs training samples in `.data` (Analytic-DPM's Γ_t), which a Run supplies
    optimizes_grid = False  # True: `local_step` exists, so grid="optimized" (GITS, optimized.py) applies
    grid_cache = None  # (folder, key) where a Run keeps this sampler's optimized grids
    per_sample_seeds = True  # __call__ takes seeds= (one per sample) instead of a generator
    budget_rule: str | None = None  # the row of budget.RULES whose options of `steps` fill in what the user left unset

    @property
    def one_step(self) -> bool:
        """This sampler's moves qualify for projection-based conditioning (see `one_step_when`)."""
        return self.one_step_when == ""

    def __init__(self, steps: int | None = None, eps: float | None = None, ts=None, grid: str | None = None,
                 rho: float = 7.0, denoise: bool = True, progress: bool = True, callback=None,
                 return_trajectory: bool = False, respacing=None):
        if ts is not None and eps is not None:
            raise ValueError("give either eps or ts, not both: a user grid ts ends at its own eps")
        if respacing is not None and (ts is not None or steps is not None or eps is not None or grid is not None):
            raise ValueError(f"respacing={respacing!r} sets the steps itself (a subsequence of the model's N steps); "
                             "give it without steps, ts, eps or grid")
        self.respacing = respacing  # "250", "10,15,20", "ddim25" or a list of timesteps (scoresde.respace)
        self.ts = None if ts is None else check_ts(ts)  # a user grid, decreasing in (0, T]
        if steps is not None and self.ts is not None and check_positive_int(steps, "steps") != len(self.ts):
            raise ValueError(f"give either steps or ts, not both: ts sets its own {len(self.ts)} times, "
                             f"got steps={steps}")
        steps = 1000 if steps is None else steps  # number of grid times T … eps; with a user grid, len(ts)
        self.steps = len(self.ts) if self.ts is not None else check_positive_int(steps, "steps")
        self.eps = None if eps is None else check_real(eps, "eps", low=0, inclusive=(False, True))  # smallest time
        # budget-aware defaults (budget.py): what the rule sets for these steps, used only where the user gave nothing
        self.rule = budget_defaults(self.budget_rule, self.steps) if self.budget_rule and respacing is None else {}
        default_grid = self.rule.get("grid", self.default_grid)
        self.grid = check_choice(default_grid if grid is None else grid, "grid", [*GRIDS, OPTIMIZED])  # grids.py
        self.grid_given = grid is not None  # else an SDE's preferred grid (EDM's σ-time: karras) wins
        self.rho = check_real(rho, "rho", low=0, inclusive=(False, True))  # ρ of the Karras grid
        self.denoise = check_bool(denoise, "denoise")  # end with Tweedie's formula at eps
        self.progress = check_bool(progress, "progress")
        self.return_trajectory = check_bool(return_trajectory, "return_trajectory")
        if callback is not None:
            check_callable(callback, "callback", "callback(x, t, k)")
        self.callback = callback

    def time_grid(self, sde: SDE) -> torch.Tensor:
        """The decreasing float64 grid T … eps (or the user's ts, or the respaced DDPM steps), validated."""
        if self.respacing is not None:
            return respaced_times(self.respacing, sde.N, sde.T)
        if self.ts is None and self.grid == OPTIMIZED:
            raise ValueError("grid='optimized' depends on the model: the sampler computes it when it is called with a "
                             "score (or give ts=scoresde.sampling.optimized_grid(sampler, score_fn, sde, shape))")
        if self.ts is None:
            eps = self.end_time(sde)
            if not eps < sde.T:
                raise ValueError(f"eps must be < T = {sde.T}, got {eps}")
            grid = self.grid if self.grid_given or sde.preferred_grid is None else sde.preferred_grid
            return make_grid(grid, sde, sde.T, eps, self.steps, self.rho)
        ts = self.ts
        if not (ts[-1] > 0 and ts[0] <= sde.T):
            raise ValueError(f"ts must lie in (0, T] = (0, {sde.T}], got [{ts[-1].item()}, {ts[0].item()}]")
        return ts

    def end_time(self, sde: SDE) -> float:
        """The grid's last time: the user's eps, else the budget rule's noise level (on an SDE without its own
        grid), else the SDE's sampling_eps."""
        if self.eps is not None:
            return self.eps
        if "eps" in self.rule and sde.preferred_grid is None:
            return budget_end_time(sde, self.rule["eps"])
        return sde.sampling_eps

    def step_orders_for(self, n: int) -> list[int]:
        """The order of each of n steps (multistep solvers warm up); what `local_step` is asked for."""
        return [1] * n

    def local_step(self, sde: SDE, ts: torch.Tensor, xs: torch.Tensor, x0s: torch.Tensor, order: int) -> torch.Tensor:
        """One step from ts[-2] to ts[-1] taken from the given states xs and model outputs x0s at ts[:-1] (oldest
        first, as many as `order` needs): the step whose local error an optimized grid minimises."""
        raise NotImplementedError(f"{self.name} cannot take a step from given states (optimizes_grid is False)")

    def _grid(self, score_fn, sde: SDE, shape, device, dtype) -> torch.Tensor:
        """time_grid, or the optimized grid for this score (cached in memory per score, and on disk for a Run),
        computed on the standard SDE and whitened score that the moves run on."""
        if not (self.grid == OPTIMIZED and self.ts is None and self.respacing is None):
            return self.time_grid(sde)
        score, sde = sde.whitened_score(score_fn), sde.standard
        from .optimized import cached_grid, check_optimizes_grid, optimized_grid
        check_optimizes_grid(self)
        if time_convention(score) != "continuous":
            raise ValueError("grid='optimized' needs a continuous-time model; a discrete-time model's DDPM steps are "
                             "fixed: use respacing")
        memo, eps = self.__dict__.setdefault("_grids", {}), self.end_time(sde)
        key = (score_fn, tuple(shape[1:]), str(device), str(dtype), eps)
        if key not in memo:
            compute = lambda: optimized_grid(self, score, sde, shape[1:], eps=eps, device=device, dtype=dtype)  # noqa: E731
            if self.grid_cache is None:
                memo[key] = compute()
            else:
                folder, run_key = self.grid_cache
                memo[key] = cached_grid(folder, {**run_key, "sampler": self.describe(), "steps": self.steps,
                                                 "eps": eps, "shape": list(shape[1:]), "dtype": str(dtype)}, compute)
        return memo[key]

    def describe(self) -> dict:
        """The sampler's name and settings, for cache keys."""
        shown = lambda k, v: (isinstance(v, (int, float, str, bool)) and not k.startswith("_")  # noqa: E731
                              and k not in ("progress", "return_trajectory"))
        return {"name": self.name, **{k: v for k, v in sorted(vars(self).items()) if shown(k, v)}}

    def prepare(self, sde: SDE, ts: torch.Tensor) -> dict:
        """Per-step coefficient tables, computed once in float64 on the host."""
        return {}

    def prepare_for(self, score: CountedScore, sde: SDE, ts: torch.Tensor, x: torch.Tensor) -> dict:
        """`prepare`, for samplers whose tables depend on the model (its declared variance, its score on data);
        x is the initial state, for its device and dtype."""
        return self.prepare(sde, ts)

    def step(self, score: CountedScore, sde: SDE, x: torch.Tensor, k: int, c: dict, generator) -> torch.Tensor:
        """Move x from ts[k] to ts[k + 1]."""
        raise NotImplementedError

    def finish(self, score, sde, x, c, generator):
        """Hook at eps before denoising (the PC sampler runs its last corrector here)."""
        return x

    def tables(self, score, sde, ts, x) -> dict:
        """`prepare_for`'s tables on x's device and dtype, with the grid as c["t"]: what `step` reads."""
        c = {k: v.to(x.device, x.dtype) if isinstance(v, torch.Tensor) else v
             for k, v in self.prepare_for(score, sde, ts, x).items()}
        c["t"] = ts.to(x.device, x.dtype)
        return c

    def integrate(self, score, sde, x, ts, generator):
        """Run the moves along ts; solvers that are not step-by-step (adaptive ODE, torchsde) override this."""
        c = self.tables(score, sde, ts, x)
        for k in progress(range(len(ts) - 1), self.progress, desc=self.name):
            x = self.step(score, sde, x, k, c, generator)
            self._record(x, c["t"][k + 1], k)
            if (k + 1) % CHECK_EVERY == 0:
                self._check_state(x, score, ts, k + 1)
        return self.finish(score, sde, x, c, generator)

    def _check_state(self, x, score, ts, k: int) -> None:
        """Stop once x is non-finite, naming the grid times between which it became so (ts[k] is reached)."""
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{self.name} sampler produced non-finite samples: the state became non-finite between "
                             f"t={ts[self._finite_at].item():.4g} and t={ts[k].item():.4g} (grid time {k} of "
                             f"{len(ts) - 1}), after {score.nfe} score evaluations; check that score_fn is finite "
                             "on the whole time range")
        self._finite_at = k

    def _record(self, x, t, k):
        if self.callback is not None or self._trajectory is not None:
            x = self._unwhiten(x)  # callbacks and trajectories see x, not the whitened x̃
        if self.callback is not None:
            self.callback(x, t, k)
        if self._trajectory is not None:
            self._trajectory.append(x)

    def __call__(self, score_fn, sde: SDE, shape, generator: torch.Generator | None = None,
                 device=None, dtype: torch.dtype | None = None, seeds=None):
        """Draw samples of `shape` = [B, ...]: returns (x, nfe), or (x, nfe, trajectory) if asked.

        seeds: one integer per sample instead of `generator`; sample i then depends on seeds[i] only.
        """
        score_fn = as_score(score_fn)
        check_sde(sde)
        shape, dtype, device = check_shape(shape), check_dtype(dtype), resolve_device(device, generator)
        generator = noise_source(generator, seeds, shape[0], device)
        # A prior N(μ, Σ) (PriorGrad): the moves run on x̃ = L⁻¹(x − μ) under the standard SDE with the score of x̃,
        # and x = μ + L x̃ is what the caller sees (identities for the standard prior).
        score, self._finite_at, self._unwhiten = CountedScore(sde.whitened_score(score_fn)), 0, sde.unwhiten
        sde, ts = for_model(sde.standard, self._grid(score_fn, sde, shape, device, dtype), score.score)
        with torch.no_grad():
            x = sde.prior_sampling(shape, generator=generator, device=device, dtype=dtype)
            self._trajectory = [self._unwhiten(x)] if self.return_trajectory else None
            x = self.integrate(score, sde, x, ts, generator)
            if self.denoise:
                alpha, sigma = sde.marginal_coeffs(ts[-1:])
                x = tweedie(score, x, ts[-1], alpha[0], sigma[0])
            self._check_state(x, score, ts, len(ts) - 1)
            x = self._unwhiten(x)
        if self.return_trajectory:
            traj, self._trajectory = torch.stack(self._trajectory + ([x] if self.denoise else [])), None
            return x, score.nfe, traj
        return x, score.nfe


def check_ts(ts) -> torch.Tensor:
    """A user time grid as a float64 CPU tensor, 1-D and strictly decreasing (so free of NaN)."""
    try:
        grid = torch.as_tensor(ts, dtype=torch.float64).cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ArgumentTypeError(f"ts must be a 1-D sequence of times, a list or tensor of floats, "
                                f"got {describe(ts)}") from None
    if grid.ndim != 1 or len(grid) < 1 or not bool((grid.diff() < 0).all()):
        raise ValueError(f"ts must be a 1-D strictly decreasing sequence of times, got {grid.tolist()}")
    return grid


def tweedie(score, x: torch.Tensor, t, alpha, sigma) -> torch.Tensor:
    """E[x_0 | x_t] = (x_t + σ_t² ∇log p_t(x_t)) / α_t (Tweedie's formula; Efron 2011), scalar t, α_t, σ_t."""
    alpha, sigma, t = (torch.as_tensor(v, dtype=x.dtype, device=x.device) for v in (alpha, sigma, t))
    return (x + sigma**2 * score(x, t)) / alpha


def sqrt_(v: torch.Tensor) -> torch.Tensor:
    return v.clamp(min=0).sqrt()

