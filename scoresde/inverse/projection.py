"""Inverse problems with an unconditional score model, conditioned at sampling time (no retraining).

After every sampler move to a grid time t, the observed part P x of the state is replaced by the observation
noised to t:   x ← x − P x + P y_t,   y_t = α_t y + σ_t z   (fresh z; P an orthogonal projection).
    inpaint   P x = m ⊙ x, the known pixels m             (Song et al. 2021, App. I; Lugmayr et al. 2022, Eq. 8)
    colorize  P x = M (m ⊙ Mᵀ x), M orthogonal on dim 1   (Song et al. 2021, App. I: the colour decoupling)
    ilvr      P x = φ_N(x) = U D x, the low-pass filter    (Choi et al. 2021, Eq. 6 and Algorithm 1)
RePaint's resampling (Lugmayr et al. 2022, Algorithm 1 with jumps): after reaching some grid times the state jumps
back up `jump` grid times through the forward kernel q(x_t' | x_t) = N((α_t'/α_t) x_t, (σ_t'² − (α_t'/α_t)² σ_t²) I)
and steps down again, `resample` − 1 times. inpaint and colorize return y exactly on the observed part, also after
the final Tweedie step; ilvr leaves the final denoising step unconditioned, as Choi et al.'s code does, so
φ_N(x̂_0) − φ_N(y) = O(σ of the grid's last time) (with N = 1: x̂_0 = E[x_0 | x_eps = α y + σ z], not y itself).

Samplers. The projection acts between moves, so a sampler qualifies when its move from t_k reads nothing but the
(projected) x at t_k and the grid: ancestral, reverse_diffusion, euler_maruyama, pc, ddim, edm (Heun's two
evaluations both sit inside one move), ode with method euler or heun, and the exponential integrators at order 1
(dpm_solver, dpm_solver_sde, deis; order 1 is DDIM or the ancestral step). Refused: multistep orders > 1 and UniPC's
corrector (they extrapolate model outputs along a path that the projections and jumps break, and their tables assume
the grid is walked once, downwards), the adaptive ODE solvers and torchsde (no moves between which to project).
"""
from __future__ import annotations

import math

import torch

from .._utils import ArgumentTypeError, check_batch, check_positive_int, check_real, describe, noise_like, progress
from ..resize import low_pass
from ..sampling import SAMPLERS, Sampler, get_sampler
from ..sde import transition_from_marginals

# Song et al. 2021, App. I: columns (1, 1, 1)/√3 (grey), (−2, 1, 1)/√6, (0, 1, −1)/√2; c = Mᵀ x decouples colour.
COLOR_DECOUPLING = torch.tensor([[1 / math.sqrt(3), -2 / math.sqrt(6), 0.0],
                                 [1 / math.sqrt(3), 1 / math.sqrt(6), 1 / math.sqrt(2)],
                                 [1 / math.sqrt(3), 1 / math.sqrt(6), -1 / math.sqrt(2)]], dtype=torch.float64)


def check_one_step(sampler) -> Sampler:
    """The sampler (a built one, or a name with default options) if it moves one step at a time; else ValueError.

    A name builds get_sampler(name, progress=False): its default grid of 1000 steps. For another budget pass a
    built sampler, e.g. get_sampler("ancestral", steps=100)."""
    if isinstance(sampler, str):
        sampler = get_sampler(sampler, progress=False)
    if not isinstance(sampler, Sampler):
        raise ArgumentTypeError(f"sampler must be a scoresde Sampler or a sampler name, got {describe(sampler)}")
    if not sampler.one_step:  # each sampler declares whether its moves qualify
        valid = ", ".join(name + cls.one_step_when for name, cls in SAMPLERS.items() if cls.one_step_when is not None)
        raise ValueError(f"conditioning at sampling time projects between one-step moves, so it needs one of: {valid}; "
                         f"got {sampler.name!r} ({type(sampler).__name__}): multistep solvers and UniPC's corrector "
                         f"reuse model outputs along the unprojected path, adaptive ODE solvers and torchsde do not "
                         f"step on the grid")
    return sampler


def repaint_schedule(n: int, resample: int, jump: int) -> list[tuple[int, int]]:
    """RePaint's walk on grid positions 0 (T) … n (eps) (Lugmayr et al. 2022, their get_schedule_jump): moves
    (p, +1) down p → p + 1, and (p, −jump) back up; at positions n, n − jump, … (≥ jump) the walk jumps back
    resample − 1 times. resample = 1 is the plain walk 0 → n."""
    left = {p: resample - 1 for p in range(n, jump - 1, -jump)}
    moves, p = [], 0
    while p < n:
        moves.append((p, 1))
        p += 1
        if left.get(p, 0) > 0:
            left[p] -= 1
            moves.append((p, -jump))
            p -= jump
    return moves


class Conditioned(Sampler):
    """A one-step sampler whose every move down to t (within t_range) is followed by x ← x − P x + P y_t, with
    RePaint's jumps; calling it returns (x, nfe) of y's shape, device and dtype, with y on the observed part
    when `exact`."""

    grid = None  # its grid is its sampler's (time_grid below), never grid="optimized"

    def __init__(self, sampler, project, y: torch.Tensor, resample: int = 1, jump: int = 1, t_range=None,
                 exact: bool = True, empty: bool = False):
        self.sampler = check_one_step(sampler)  # its grid, steps, prepare, step, finish and denoise are used
        self.project = project  # P, an orthogonal projection on tensors shaped like y
        self.y = y  # the observation, shaped like the samples
        self.resample = check_positive_int(resample, "resample")  # RePaint's r: passes over each jump interval
        self.jump = check_positive_int(jump, "jump")  # RePaint's j: grid times jumped back each time
        self.t_range = check_t_range(t_range)  # project at grid times t_min ≤ t ≤ t_max (ILVR's range)
        self.exact = exact  # put y itself on the observed part of the output
        self.empty = empty  # P = 0: nothing to do (and no noise drawn, so paths equal the plain sampler's)
        s = self.sampler
        self.name, self.stochastic = f"{s.name}+{type(project).__name__}", True
        self.denoise, self.progress, self.callback, self.return_trajectory = (
            s.denoise, s.progress, s.callback, s.return_trajectory)

    def time_grid(self, sde):
        ts = self.sampler.time_grid(sde)
        if self.t_range[1] != math.inf and self.t_range[1] > sde.T:
            raise ValueError(f"t_range must lie in [0, T] = [0, {sde.T}], got {self.t_range}")
        if self.jump > len(ts) - 1:
            raise ValueError(f"jump must be at most the number of steps ({len(ts) - 1}), got {self.jump}")
        return ts

    def integrate(self, score, sde, x, ts, generator):
        s, c = self.sampler, self.sampler.tables(score, sde, ts, x)
        alpha, sigma = (v.to(x.device, x.dtype) for v in sde.marginal_coeffs(ts))
        up_a, up_v = transition_from_marginals(alpha[:-self.jump], sigma[:-self.jump], alpha[self.jump:],
                                               sigma[self.jump:])  # q(x at p − j | x at p), indexed by p − j
        Py = self.project(self.y.to(x.device, x.dtype))
        inside = (ts >= self.t_range[0]) & (ts <= self.t_range[1])
        for i, (p, move) in enumerate(progress(repaint_schedule(len(ts) - 1, self.resample, self.jump),
                                               self.progress, desc=self.name)):
            if move > 0:
                x, p = s.step(score, sde, x, p, c, generator), p + 1
                x = self.observe(x, Py, alpha[p], sigma[p], generator) if inside[p] else x
            else:  # RePaint's jump: x_{t'} = (α_t'/α_t) x_t + √(σ_t'² − (α_t'/α_t)² σ_t²) z
                p += move
                x = up_a[p] * x + up_v[p].sqrt() * noise_like(x, generator)
            self._record(x, c["t"][p], i)
            if (i + 1) % 10 == 0:
                self._check_state(x, score, ts, p)
        x_end = s.finish(score, sde, x, c, generator)  # PC's last corrector moves x at eps: observe again
        return self.observe(x_end, Py, alpha[-1], sigma[-1], generator) if x_end is not x and inside[-1] else x_end

    def observe(self, x, Py, alpha, sigma, generator):
        """x − P x + P y_t with y_t = α_t y + σ_t z, z fresh."""
        if self.empty:
            return x
        return x - self.project(x) + alpha * Py + sigma * self.project(noise_like(x, generator))

    def __call__(self, score_fn, sde, generator=None, seeds=None):
        out = super().__call__(score_fn, sde, self.y.shape, generator=generator, device=self.y.device,
                               dtype=self.y.dtype, seeds=seeds)
        if not self.exact or self.empty:
            return out
        x = out[0] - self.project(out[0]) + self.project(self.y)  # the observed part exactly, after Tweedie
        if self.return_trajectory:
            out[2][-1] = x
        return (x, *out[1:])


class Mask:
    """P x = m ⊙ x: keep the coordinates where m = 1 (the identity basis)."""

    def __init__(self, mask: torch.Tensor):
        self.mask = mask

    def __call__(self, x):
        return self.mask.to(x.device, x.dtype) * x


class Basis:
    """P x = M (m ⊙ Mᵀ x): keep the coordinates c = Mᵀ x (M orthogonal, acting on dim 1) where m = 1."""

    def __init__(self, M: torch.Tensor, mask: torch.Tensor):
        self.M, self.mask = M, mask

    def __call__(self, x):
        M = self.M.to(x.device, x.dtype)
        c = torch.einsum("ji,bj...->bi...", M, x) * self.mask.to(x.device, x.dtype)
        return torch.einsum("ij,bj...->bi...", M, c)


class LowPass:
    """P x = φ_N(x) = U D x (scoresde.resize.low_pass): each N × N block replaced by its mean."""

    def __init__(self, factor: int):
        self.factor = factor

    def __call__(self, x):
        return low_pass(x, self.factor)


def check_t_range(t_range) -> tuple[float, float]:
    """(t_min, t_max) with 0 ≤ t_min < t_max; None is everything, (0, ∞)."""
    if t_range is None:
        return 0.0, math.inf
    if not isinstance(t_range, (tuple, list)) or len(t_range) != 2:
        raise ArgumentTypeError(f"t_range must be a pair (t_min, t_max) of times, got {describe(t_range)}")
    t_min, t_max = check_real(t_range[0], "t_range[0]", low=0), check_real(t_range[1], "t_range[1]", low=0)
    if not t_min < t_max:
        raise ValueError(f"t_range must be (t_min, t_max) with t_min < t_max, got {tuple(t_range)}")
    return t_min, t_max


def check_observation(y, mask, name: str = "mask") -> tuple[torch.Tensor, torch.Tensor]:
    """y a finite float batch [B, ...]; mask of 0/1 (or bool) values broadcastable to y's shape, on y's device."""
    check_batch(y, "y", finite=True)
    if not isinstance(mask, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a tensor of 0/1 (or bool) values broadcastable to y "
                                f"{tuple(y.shape)}, got {describe(mask)}")
    if mask.ndim > y.ndim or any(m not in (1, n) for m, n in zip(reversed(mask.shape), reversed(y.shape))):
        raise ValueError(f"{name} must broadcast to y's shape {tuple(y.shape)}, got shape {tuple(mask.shape)}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} must hold 0/1 (or bool) values: 1 where observed, got values "
                         f"{torch.unique(mask.float()).tolist()[:6]}")
    return y, mask.to(y.device, y.dtype)


def check_basis(M, channels: int) -> torch.Tensor:
    """An orthogonal [C, C] matrix (Mᵀ M = I up to 1e-6), C = y.shape[1]."""
    if not isinstance(M, torch.Tensor) or not M.is_floating_point() or M.shape != (channels, channels):
        raise ValueError(f"basis must be an orthogonal float matrix [{channels}, {channels}] acting on dim 1 of y, "
                         f"got {describe(M)}")
    M64 = M.double()
    error = (M64.T @ M64 - torch.eye(channels, dtype=torch.float64, device=M.device)).abs().max().item()
    if error > 1e-6:
        raise ValueError(f"basis must be orthogonal (MᵀM = I), got max |MᵀM − I| = {error:.3g}")
    return M


def inpaint(score_fn, sde, y: torch.Tensor, mask: torch.Tensor, sampler, resample: int = 1, jump: int = 1,
            generator=None, seeds=None):
    """Samples x with x = y where mask = 1 (Song et al. 2021, App. I; RePaint's resampling with resample > 1):
    returns (x, nfe). mask: 0/1 broadcastable to y [B, ...]; y's values where mask = 0 are ignored.
    sampler: a one-step sampler, built (get_sampler("ancestral", steps=100)) or a name, which runs its default
    1000 steps (check_one_step)."""
    y, mask = check_observation(y, mask)
    return Conditioned(sampler, Mask(mask), y, resample, jump, empty=not bool(mask.any()))(score_fn, sde, generator,
                                                                                          seeds)


def colorize(score_fn, sde, y: torch.Tensor, sampler, mask: torch.Tensor | None = None,
             basis: torch.Tensor | None = COLOR_DECOUPLING, resample: int = 1, jump: int = 1, generator=None,
             seeds=None):
    """Samples x with Mᵀx = Mᵀy where mask = 1, M = basis acting on dim 1 (Song et al. 2021, App. I): returns
    (x, nfe). Default: the colour decoupling with its grey coordinate observed, i.e. colourisation of RGB y's
    grey level. mask: 0/1 over the coordinates Mᵀy, broadcastable to y."""
    check_batch(y, "y", finite=True)
    basis = check_basis(torch.eye(y.shape[1], dtype=y.dtype, device=y.device) if basis is None else basis,
                        y.shape[1])
    if mask is None:
        mask = torch.zeros(y.shape[1:2] + (1,) * (y.ndim - 2), dtype=y.dtype, device=y.device)
        mask[0] = 1
    y, mask = check_observation(y, mask)
    return Conditioned(sampler, Basis(basis, mask), y, resample, jump, empty=not bool(mask.any()))(
        score_fn, sde, generator, seeds)


def ilvr(score_fn, sde, y: torch.Tensor, factor: int, sampler, t_range=None, generator=None, seeds=None):
    """ILVR (Choi et al. 2021, Algorithm 1): samples x with φ_N(x) ≈ φ_N(y), N = factor, projecting at the grid
    times in t_range = (t_min, t_max) (None: all); returns (x, nfe). y: the reference [B, C, H, W] at full
    size (for a low-resolution one, scoresde.resize.upsample(y_low, N))."""
    check_batch(y, "y", finite=True)
    factor = check_positive_int(factor, "factor")
    if y.ndim != 4 or y.shape[-1] % factor or y.shape[-2] % factor:
        raise ValueError(f"y must be images [B, C, H, W] with H and W multiples of factor={factor}, got "
                         f"{describe(y)}")
    return Conditioned(sampler, LowPass(factor), y, t_range=t_range, exact=False)(score_fn, sde, generator, seeds)
