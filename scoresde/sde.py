"""Linear SDEs dx = f(t) x dt + g(t) dw and their Gaussian perturbation kernels (Song et al. 2021).

Every SDE here has x_t | x_0 ~ N(α_t x_0, σ_t² I). A subclass supplies two methods:
`coefficients(t) -> (f, g)` and `marginal_coeffs(t) -> (alpha, sigma)`. From them the base class derives
the score_sde interface: `sde`, `marginal_prob`, `discretize`, `prior_sampling`, `prior_logp` and `reverse`.

`with_prior(N(μ, Σ))` wraps the SDE in PriorGrad's process (scoresde.priorgrad.PriorSDE), which samplers, losses
and the likelihood reach through the prior's hooks: `standard`, `whiten`, `unwhiten`, `whitened_score` and
`given`. Here, under N(0, I), every hook is the identity.

Time convention: t ∈ (0, T]. DDPM step i ∈ {1, …, N} sits at t_i = iT/N, and a discrete-time network
receives the index i − 1 ∈ {0, …, N − 1} (`SDE.timestep`). With eps = T/N, a uniform grid of N times
from T down to eps is exactly DDPM's set of timesteps.
"""
from __future__ import annotations

import abc
import math

import torch

from ._utils import (ArgumentTypeError, append_dims, check_batch, check_bool, check_dtype, check_positive_int,
                     check_real, check_shape, check_time, describe, randn, resolve_device)
from .schedules import get_schedule
from .score import as_score


def transition_from_marginals(alpha_t, sigma_t, alpha_s, sigma_s):
    """a = α_t/α_s and v = σ_t² − a² σ_s² of x_t | x_s ~ N(a x_s, v I), for any linear SDE with these marginals."""
    a = alpha_t / alpha_s
    return a, (sigma_t**2 - (a * sigma_s) ** 2).clamp(min=0)


def posterior_coeffs(alpha_t, sigma_t, alpha_s, sigma_s):
    """DDPM's posterior q(x_s | x_t, x_0) (Ho et al. 2020, Eq. 7): a, v of the transition s → t, and the
    posterior variance β̃ = v σ_s²/σ_t²."""
    a, v = transition_from_marginals(alpha_t, sigma_t, alpha_s, sigma_s)
    return a, v, v * sigma_s**2 / sigma_t**2


def reverse_drift(sde: "SDE", score_fn, x: torch.Tensor, t: torch.Tensor, c: float) -> torch.Tensor:
    """f(t) x − c g(t)² s(x, t): the reverse-time SDE's drift (c = 1) or the probability-flow ODE's (c = ½); no checks."""
    f, g = sde.coefficients(t)
    return append_dims(f, x.ndim) * x - c * append_dims(g**2, x.ndim) * score_fn(x, t)


class SDE(abc.ABC):
    """Base class for linear SDEs dx = f(t) x dt + g(t) dw on t ∈ [0, T]."""

    sampling_eps: float = 1e-3  # default smallest time a sampler reaches
    prior_std: float = 1.0  # p_T ≈ N(0, prior_std² I)
    variance_preserving: bool = False  # α_t² + σ_t² = 1 (VP): then the noise level α_t alone fixes the marginal
    ddpm_lattice: bool = False  # has DDPM's discrete β_i, α_i, ᾱ_i on t_i = iT/N (alphas_cumprod, discrete_marginal_coeffs)
    on_lattice: bool = False  # is the discrete-time view: its marginals exist only at t_i, and `snap` moves times there
    preferred_grid: str | None = None  # the time grid samplers use when none is given (None: each sampler's own)

    def __init__(self, N: int = 1000, T: float = 1.0):
        self.N = check_positive_int(N, "N")  # number of discretisation steps
        self.T = check_real(T, "T", low=0, inclusive=(False, True))  # time horizon

    # -- what a subclass supplies ---------------------------------------------------------------
    @abc.abstractmethod
    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-time drift coefficient f(t) and diffusion g(t), each of shape [B]."""

    @abc.abstractmethod
    def marginal_coeffs(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """α_t and σ_t of the perturbation kernel x_t = α_t x_0 + σ_t z, each of shape [B]."""

    # -- derived interface ----------------------------------------------------------------------
    def sde(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift f(t) x and diffusion g(t) (Song et al. 2021, Eq. 5)."""
        self._check(x, t)
        f, g = self.coefficients(t)
        return append_dims(f, x.ndim) * x, g

    def marginal_prob(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean α_t x_0 and std σ_t of p_0t(x_t | x_0)."""
        self._check(x, t)
        alpha, sigma = self.marginal_coeffs(t)
        return append_dims(alpha, x.ndim) * x, sigma

    def transition_coeffs(self, t: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a, v of the exact transition x_t | x_s ~ N(a x_s, v I) for s < t."""
        return transition_from_marginals(*self.marginal_coeffs(t), *self.marginal_coeffs(s))

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float | None = None):
        """f, G of the exact step x_t = x_{t−dt} + f + G z over [t − dt, t]; dt defaults to T/N."""
        self._check(x, t)
        dt = self.T / self.N if dt is None else check_real(dt, "dt", 0, self.T, (False, True), symbol="(0, T]")
        a, v = self.transition_coeffs(t, (t - dt).clamp(min=0))
        return append_dims(a - 1, x.ndim) * x, v.sqrt()

    def prior_sampling(self, shape, generator=None, device=None, dtype=None) -> torch.Tensor:
        """Draw x_T ~ N(0, prior_std² I); device defaults to the generator's, else the CPU."""
        device = resolve_device(device, generator)
        return self.prior_std * randn(check_shape(shape), generator, device, check_dtype(dtype))

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, prior_std² I) per sample, shape [B]."""
        check_batch(z, "z")
        d = z[0].numel()
        return -0.5 * d * math.log(2 * math.pi * self.prior_std**2) - z.flatten(1).pow(2).sum(1) / (2 * self.prior_std**2)

    def timestep(self, t: torch.Tensor) -> torch.Tensor:
        """Discrete index i − 1 ∈ {0, …, N−1} of the DDPM step at t_i = iT/N nearest to t."""
        return (torch.round(t * (self.N / self.T)).long() - 1).clamp(0, self.N - 1)

    # -- the prior's hooks: identities under N(0, I); PriorGrad's process (scoresde.priorgrad) implements them --
    def with_prior(self, prior):
        """This SDE diffusing towards prior = N(μ, Σ) (a scoresde.prior.GaussianPrior or ClassPrior): a
        scoresde.priorgrad.PriorSDE; None: this SDE."""
        from .priorgrad import PriorSDE
        return self if prior is None else PriorSDE(self, prior)

    def given(self, y) -> "SDE":
        """The SDE of a batch with class labels y: this one (a per-class prior selects the labels' priors)."""
        return self

    @property
    def standard(self) -> "SDE":
        """The SDE with the standard prior, which samplers run: this one."""
        return self

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def unwhiten(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def unwhiten_score(self, score: torch.Tensor) -> torch.Tensor:
        return score

    def whitened_score(self, score_fn):
        """The Score of score_fn, unchanged (a prior's process whitens it)."""
        return as_score(score_fn)

    def reverse(self, score_fn, probability_flow: bool = False) -> "ReverseSDE":
        """The reverse-time SDE (Eq. 6), or the probability-flow ODE (Eq. 13) when asked."""
        return ReverseSDE(self, score_fn, probability_flow)

    def _check(self, x: torch.Tensor, t: torch.Tensor) -> None:
        check_batch(x)
        check_time(t, self.T, batch=x.shape[0])


SDE_INTERFACE = ("T", "N", "coefficients", "marginal_coeffs", "marginal_prob", "prior_sampling", "prior_logp",
                 "standard", "whiten", "unwhiten", "whitened_score",  # these four: the prior's hooks
                 "ddpm_lattice", "on_lattice")  # declared capabilities


def check_sde(sde, name: str = "sde") -> "SDE":
    """Return sde if it is a scoresde.SDE, or a wrapper with the same interface (duck typing)."""
    missing = [] if isinstance(sde, SDE) else [m for m in SDE_INTERFACE if not hasattr(sde, m)]
    if missing:
        lacks = f", which lacks {missing}" if len(missing) < len(SDE_INTERFACE) else ""
        raise ArgumentTypeError(f"{name} must be a scoresde.SDE such as scoresde.VPSDE(), got {describe(sde)}{lacks}")
    return sde


class ReverseSDE:
    """dx = [f(t) x − c g(t)² ∇log p_t(x)] dt + g(t) dw̄, with c = 1 (SDE) or ½ and no noise (ODE)."""

    def __init__(self, sde: SDE, score_fn, probability_flow: bool = False):
        check_sde(sde)
        score_fn = as_score(score_fn)
        check_bool(probability_flow, "probability_flow")
        self.forward_sde, self.score_fn, self.probability_flow = sde, score_fn, probability_flow
        self.T, self.N = sde.T, sde.N
        self._c = 0.5 if probability_flow else 1.0

    def sde(self, x: torch.Tensor, t: torch.Tensor):
        """Reverse drift and diffusion (Song et al. 2021, Eqs. 6 and 13)."""
        drift, g = self.forward_sde.sde(x, t)
        drift = drift - self._c * append_dims(g**2, x.ndim) * self.score_fn(x, t)
        return drift, torch.zeros_like(g) if self.probability_flow else g

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float | None = None):
        """Reverse-diffusion discretisation f − c G² s, G (Song et al. 2021, Eq. 46)."""
        f, G = self.forward_sde.discretize(x, t, dt)
        f = f - self._c * append_dims(G**2, x.ndim) * self.score_fn(x, t)
        return f, torch.zeros_like(G) if self.probability_flow else G


class VPSDE(SDE):
    """Variance-preserving SDE dx = −½β(t) x dt + √β(t) dw; its discretisation is DDPM (Song et al. 2021, Eq. 11)."""

    variance_preserving = True
    ddpm_lattice = True

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, N: int = 1000, schedule="linear"):
        super().__init__(N=N, T=1.0)
        self.schedule = get_schedule(schedule, beta_min, beta_max, self.N)  # β(t) and ∫β
        self.discrete_betas = self.schedule.discrete_betas(self.N)  # DDPM β_i, float64
        self.alphas = 1.0 - self.discrete_betas  # DDPM α_i
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)  # DDPM ᾱ_i

    def coefficients(self, t):
        beta_t = self.schedule.beta(t)
        return -0.5 * beta_t, beta_t.sqrt()

    def marginal_coeffs(self, t):
        """α_t = exp(−½∫β), σ_t = √(1 − α_t²)."""
        integral = self.schedule.integral(t)
        return torch.exp(-0.5 * integral), torch.sqrt(-torch.expm1(-integral))

    def discrete_marginal_coeffs(self, t: torch.Tensor):
        """√ᾱ_i and √(1 − ᾱ_i) of DDPM step i at t_i = iT/N, i ∈ {0, …, N} (ᾱ_0 = 1); t must be such a step."""
        index = torch.round(t * (self.N / self.T)).long()
        if not torch.allclose(t, index.to(t.dtype) * (self.T / self.N), atol=1e-6, rtol=0):
            raise ValueError(f"a discrete-time model is defined only at DDPM steps t_i = i*T/N (N={self.N}); "
                             f"got t = {t.tolist()}")
        abar = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])
        abar = abar.to(t.device)[index.clamp(0, self.N)].to(t.dtype)
        return abar.sqrt(), (1 - abar).sqrt()

    def discretize(self, x, t, dt=None):
        """With dt=None, DDPM's forward step x_i = √(1−β_i) x_{i−1} + √β_i z (Ho et al. 2020, Eq. 2)."""
        if dt is not None:
            return super().discretize(x, t, dt)
        self._check(x, t)
        beta = self.discrete_betas.to(x.device)[self.timestep(t)].to(x.dtype)
        return append_dims(torch.sqrt(1 - beta) - 1, x.ndim) * x, beta.sqrt()


class subVPSDE(SDE):
    """Sub-VP SDE dx = −½β x dt + √(β(1 − e^{−2∫β})) dw (Song et al. 2021, Eq. 34)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, N: int = 1000, schedule="linear"):
        super().__init__(N=N, T=1.0)
        self.schedule = get_schedule(schedule, beta_min, beta_max, self.N)

    def coefficients(self, t):
        beta_t = self.schedule.beta(t)
        return -0.5 * beta_t, torch.sqrt(beta_t * -torch.expm1(-2 * self.schedule.integral(t)))

    def marginal_coeffs(self, t):
        """α_t = exp(−½∫β), σ_t = 1 − α_t² (Song et al. 2021, Eq. 29)."""
        integral = self.schedule.integral(t)
        return torch.exp(-0.5 * integral), -torch.expm1(-integral)


class VESDE(SDE):
    """Variance-exploding SDE dx = √(d σ²(t)/dt) dw, σ(t) = σ_min (σ_max/σ_min)^t (Song et al. 2021, Eq. 30).

    The perturbation std is the exact √(σ(t)² − σ_min²); score_sde approximates it by σ(t).
    """

    sampling_eps = 1e-5

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, N: int = 1000):
        super().__init__(N=N, T=1.0)
        check_real(sigma_min, "sigma_min", low=0, inclusive=(False, True))
        check_real(sigma_max, "sigma_max")
        if not sigma_max > sigma_min:
            raise ValueError(f"sigma_max must be greater than sigma_min, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.log_ratio = math.log(self.sigma_max / self.sigma_min)  # log(σ_max/σ_min)
        self.prior_std = math.sqrt(self.sigma_max**2 - self.sigma_min**2)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Noise scale σ(t) = σ_min (σ_max/σ_min)^t."""
        return self.sigma_min * torch.exp(t * self.log_ratio)

    def coefficients(self, t):
        return torch.zeros_like(t), self.sigma(t) * math.sqrt(2 * self.log_ratio)

    def marginal_coeffs(self, t):
        """α_t = 1, σ_t = σ_min √((σ_max/σ_min)^{2t} − 1)."""
        return torch.ones_like(t), self.sigma_min * torch.sqrt(torch.expm1(2 * t * self.log_ratio))


class EDMSDE(SDE):
    """EDM's process (Karras et al. 2022, Sec. 3): x_t = x_0 + t ε, σ(t) = t, s(t) = 1, so dx = √(2t) dw on
    t ∈ (0, σ_max]. Time is the noise level: its natural grid is Karras's ρ-spaced σ (`preferred_grid`), from
    σ_max = 80 down to σ_min = 0.002 (`sampling_eps`)."""

    preferred_grid = "karras"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, N: int = 1000):
        check_real(sigma_min, "sigma_min", low=0, inclusive=(False, True))
        check_real(sigma_max, "sigma_max")
        if not sigma_max > sigma_min:
            raise ValueError(f"sigma_max must be greater than sigma_min, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        super().__init__(N=N, T=float(sigma_max))
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.sampling_eps, self.prior_std = self.sigma_min, self.sigma_max

    def coefficients(self, t):
        """f = 0, g = √(dσ²/dt) = √(2t)."""
        return torch.zeros_like(t), (2 * t).sqrt()

    def marginal_coeffs(self, t):
        """α_t = 1, σ_t = t."""
        return torch.ones_like(t), t.clone()


class DiscreteTimeVPSDE(SDE):
    """A VPSDE as a discrete-time (DDPM) model sees it: its marginals are DDPM's ᾱ_i at t_i = iT/N.

    Samplers use this view for a score declared discrete (`get_score_fn(..., continuous=False)`), so a
    continuous model never meets the discrete ᾱ and a discrete one never meets ᾱ(t). Off the lattice the
    marginals fail clearly; `snap` moves a time grid onto it first. f(t), g(t) stay those of the VPSDE.
    """

    on_lattice = True

    def __init__(self, sde: SDE):
        if not sde.ddpm_lattice:
            raise ValueError(f"a discrete-time score needs an SDE with DDPM's discrete betas (VPSDE), got {type(sde).__name__}")
        super().__init__(N=sde.N, T=sde.T)
        self.continuous_sde = sde
        self.sampling_eps, self.prior_std = sde.sampling_eps, sde.prior_std

    def coefficients(self, t):
        return self.continuous_sde.coefficients(t)

    def marginal_coeffs(self, t):
        return self.continuous_sde.discrete_marginal_coeffs(t)

    def snap(self, ts: torch.Tensor, unique: bool = True) -> torch.Tensor:
        """Each time moved to the nearest DDPM step t_i = iT/N, i ≥ 1; repeated steps dropped when `unique`.

        This is the respacing of Nichol & Dhariwal (2021): a grid of K times becomes K or fewer DDPM steps.
        """
        index = torch.round(ts * (self.N / self.T)).clamp(1, self.N)
        return (torch.unique_consecutive(index) if unique else index) * (self.T / self.N)
