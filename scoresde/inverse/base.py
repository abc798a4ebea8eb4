"""The loop shared by the posterior solvers: a wrapped sampler's grid, the observation y = A x + σ_y ε, and a final
move from the grid's last time to t = 0 that returns the (conditioned) estimate of x_0.

A solver is a Sampler: the prior draw, the score's time convention, NFE counting, progress and the state checks
are the base loop's. Each move from t to s starts from x̂_0 = (x_t + σ_t² s_θ(x_t, t))/α_t and is DDIM's
(Song et al. 2021, Eq. 12) for any SDE with Gaussian marginals:
    x_s = α_s x̂_0 + √(σ_s² − c²) ε̂ + c z,   ε̂ = (x_t − α_t x̂_0)/σ_t,   c = η √β̃,
with β̃ = (σ_s²/σ_t²)(σ_t² − (α_t/α_s)² σ_s²) the DDPM posterior variance; η = 1 is the ancestral sampler, and
the wrapped sampler gives η: "ancestral" (its β̃ variance) is 1, "ddim" its own eta. Each method changes x̂_0,
the move or the noise. The move to s = 0 (α = 1, σ = 0) returns x̂_0 itself, so the NFE equals the plain
sampler's with its Tweedie step: one per grid time.
"""
from __future__ import annotations

import torch

from .._utils import ArgumentTypeError, check_batch, check_real, describe, noise_like, progress
from ..sampling import Sampler, get_sampler
from .operators import check_operator, is_linear

# What each wrappable sampler contributes: its η (None: it cannot be wrapped with these options).
KERNELS = {"ancestral": lambda s: 1.0 if s.variance in (None, "beta_tilde") else None,
           "ddim": lambda s: s.eta}


class Solution(tuple):
    """(x, nfe), as every sampler returns, carrying what a solver reports besides in `.info` (the SMC sampler's
    effective sample sizes, particles and weights)."""

    def __new__(cls, x, nfe, info=None):
        out = super().__new__(cls, (x, nfe))
        out.info = info or {}
        return out


def data_shape(operator, y: torch.Tensor, shape):
    """One sample's shape of x: `shape`, else what the operator implies from y (its `data_shape`)."""
    if shape is not None:
        return tuple(shape)
    inferred = operator.data_shape(tuple(y.shape[1:])) if is_linear(operator) else None
    if inferred is None:
        raise ValueError(f"shape (one sample's shape of x) is needed with operator {describe(operator)}: it does not "
                         f"say what x it observes")
    return tuple(inferred)


def wrapped(sampler, method: str, accepted) -> tuple[Sampler, float]:
    """The sampler (a name builds its default 1000-step grid) and its η, if the method can wrap it; else an error
    listing those it can."""
    if isinstance(sampler, str):
        sampler = get_sampler(sampler, progress=False)
    if not isinstance(sampler, Sampler):
        raise ArgumentTypeError(f"sampler must be a scoresde Sampler or a sampler name, got {describe(sampler)}")
    eta = KERNELS[sampler.name](sampler) if sampler.name in KERNELS and sampler.name in accepted else None
    if eta is None:
        raise ValueError(f"method {method!r} cannot wrap sampler {sampler.name!r} with its options: it moves by the "
                         f"DDPM/DDIM kernel, so it takes one of {list(accepted)} (ancestral with its default "
                         f"variance β̃)")
    if sampler.respacing is not None or sampler.grid == "optimized":
        raise ValueError(f"method {method!r} takes the sampler's fixed grid (steps, grid, eps or ts), got "
                         f"{'respacing' if sampler.respacing is not None else 'grid=optimized'}")
    return sampler, float(eta)


class Solver(Sampler):
    """A posterior solver for y = A x + σ_y ε: subclasses define `move(score, x, k, c, generator)`."""

    method = "?"
    samplers = ("ancestral", "ddim")  # the samplers whose kernel (and η) it can take
    linear = True  # needs a LinearOperator (its SVD); False: any differentiable callable also works
    exact_y = False  # True: the method takes y as noise-free (σ_y is not read), as the projection methods do
    options: tuple = ()  # its own options, which solve() passes on
    grid = None  # its grid is the wrapped sampler's

    def __init__(self, sampler, operator, y: torch.Tensor, sigma_y: float = 0.0, shape=None):
        self.sampler, self.eta = wrapped(sampler, self.method, self.samplers)
        check_batch(y, "y", finite=True)
        self.shape = data_shape(operator, y, shape)
        self.operator = check_operator(operator, self.shape, linear=self.linear, method=self.method)
        if is_linear(self.operator) and tuple(y.shape[1:]) != self.operator.out_shape:
            raise ValueError(f"y must be observations of shape [B, {', '.join(map(str, self.operator.out_shape))}] "
                             f"for operator {self.operator.name!r} on data of shape {self.shape}, got "
                             f"{tuple(y.shape)}")
        self.y = y
        self.sigma_y = check_real(sigma_y, "sigma_y", low=0)
        s = self.sampler
        self.name, self.stochastic, self.denoise = f"{self.method}+{s.name}", True, False
        self.progress, self.callback, self.return_trajectory = s.progress, s.callback, s.return_trajectory

    def time_grid(self, sde):
        return self.sampler.time_grid(sde)

    def batch_shape(self):
        return (self.y.shape[0], *self.shape)

    def __call__(self, score_fn, sde, generator=None, seeds=None):
        """Posterior samples x [B, *shape] for the B observations y: returns Solution (x, nfe)."""
        if sde.standard is not sde:
            raise ValueError("posterior solvers need an SDE with the standard prior N(0, σ_T² I), got a "
                             f"{type(sde).__name__} with a non-standard prior (PriorGrad)")
        out = super().__call__(score_fn, sde, self.batch_shape(), generator=generator, device=self.y.device,
                               dtype=self.y.dtype, seeds=seeds)
        if self.return_trajectory:
            return out
        return Solution(self.finalize(out[0], generator), out[1], self.report())

    def finalize(self, x, generator):
        """The samples returned, from the final state (the SMC sampler picks one particle per observation)."""
        return x

    def report(self) -> dict:
        """What Solution.info carries."""
        return {}

    def tables(self, score, sde, ts, x):
        """α, σ on the grid and at t = 0 (α = 1, σ = 0), η's c of each move, and y on x's device and dtype."""
        chose_beta_tilde = self.sampler.name == "ancestral" and self.sampler.variance == "beta_tilde"
        if score.learned_variance and not (self.eta == 0 or chose_beta_tilde):
            raise ValueError(f"method {self.method!r} moves with the DDPM posterior variance η² β̃, but this model "
                             "declares a learned variance, which the wrapped sampler would use: pass "
                             "get_sampler('ancestral', variance='beta_tilde', ...) (or ddim with eta=0) to use β̃")
        alpha, sigma = sde.marginal_coeffs(ts)
        alpha, sigma = torch.cat([alpha, alpha.new_ones(1)]), torch.cat([sigma, sigma.new_zeros(1)])
        a_t, s_t, a_s, s_s = alpha[:-1], sigma[:-1], alpha[1:], sigma[1:]
        beta_tilde = (s_s**2 / s_t**2) * (s_t**2 - (a_t / a_s) ** 2 * s_s**2)
        c = {"alpha": alpha, "sigma": sigma, "c": self.eta * beta_tilde.clamp(min=0).sqrt()}
        c = {k: v.to(x.device, x.dtype) for k, v in c.items()}
        c["t"], c["y"], c["prior_std"] = ts.to(x.device, x.dtype), self.y.to(x.device, x.dtype), sde.prior_std
        return c

    def x0_hat(self, score, x, k, c):
        """x̂_0 = (x_t + σ_t² s_θ(x_t, t))/α_t at grid time k."""
        return (x + c["sigma"][k] ** 2 * score(x, c["t"][k])) / c["alpha"][k]

    def ddim(self, x, x0, k, c, noise):
        """The move t_k → t_{k+1} from x_t and x̂_0, with the given noise term (c z, or another of that size)."""
        a_t, s_t, a_s, s_s, ck = (c["alpha"][k], c["sigma"][k], c["alpha"][k + 1], c["sigma"][k + 1], c["c"][k])
        return a_s * x0 + (s_s**2 - ck**2).clamp(min=0).sqrt() * (x - a_t * x0) / s_t + noise

    def integrate(self, score, sde, x, ts, generator):
        c = self.tables(score, sde, ts, x)
        x = self.start(x, c)
        for k in progress(range(len(ts)), self.progress, desc=self.name):
            x = self.move(score, x, k, c, generator)
            self._record(x, c["t"][k + 1] if k + 1 < len(ts) else c["t"].new_zeros(()), k)
        return x

    def start(self, x, c):
        """The first state, from the prior draw x ~ N(0, prior_std² I) (and what the moves read, added to c)."""
        return x

    def move(self, score, x, k, c, generator):
        """x at grid time k + 1 (at t = 0, the estimate of x_0, after the last grid time)."""
        raise NotImplementedError

    # spectral helpers (Kawar et al. 2022, Sec. 3.2) on the bound operator
    def spectral_y(self, c, like):
        """s [k] and ȳ = (Uᵀy)[:k]/s where s > 0 (0 elsewhere): the observation in the coordinates of Vᵀx."""
        op = self.operator
        s = op.singulars(like)
        safe = torch.where(s > 0, s, torch.ones_like(s))
        return s, op.Ut(c["y"])[:, :len(s)] * (s > 0) / safe

    def in_range(self, r: torch.Tensor) -> torch.Tensor:
        """The part of a residual r = y − A x in A's range (Uᵀr kept where s > 0): noise on what A never observes
        (a mask's zeros) is dropped. A non-linear forward model keeps r whole."""
        op = self.operator
        if not is_linear(op):
            return r
        s, u = op.singulars(r), op.Ut(r)
        keep = torch.zeros(u.shape[1], dtype=torch.bool, device=r.device)
        keep[:len(s)] = s > 0
        return op.U(u * keep)

    def __repr__(self):
        return f"{type(self).__name__}({self.sampler.name}, steps={self.sampler.steps}, sigma_y={self.sigma_y})"


def grad_of(output, x, grad_outputs=None):
    """∂⟨output, grad_outputs⟩/∂x (the vector-Jacobian product); output scalar when grad_outputs is None."""
    return torch.autograd.grad(output, x, grad_outputs=grad_outputs)[0]


def safe_inverse(v: torch.Tensor) -> torch.Tensor:
    """1/v where v > 0, else 0 (a pseudo-inverse of a diagonal)."""
    return torch.where(v > 0, 1 / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))

