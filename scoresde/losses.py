"""Denoising score matching (Song et al. 2021, Eq. 7) and DDPM's discrete loss (Ho et al. 2020, Eq. 14).

    L(θ) = E_t λ(t) E_{x_0, z} ‖s_θ(x_t, t) + z/σ_t‖²,   x_t = α_t x_0 + σ_t z,   t ~ U(eps, T).

With λ(t) = σ_t² ("simple") and an ε-network (s_θ = −ε_θ/σ_t) the summand is ‖z − ε_θ(x_t, t)‖²:
DDPM's L_simple, in continuous time. λ(t) = g(t)² ("likelihood") makes L an upper bound on the
negative log-likelihood (Song, Durkan, Murray & Ermon 2021). λ(t) = σ_t²/α_t² ("v") gives ‖ε − ε_θ‖²/α_t²,
which on VP (α² + σ² = 1) is ‖v − v_θ‖², the v-prediction loss of Salimans & Ho 2022. It keeps the weight of
high noise levels, where L_simple's ‖ε − ε_θ‖² = α_t² ‖v − v_θ‖² leaves a v-network untrained as α_t → 0.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch

from ._utils import (append_dims, check_batch, check_bool, check_callable, check_choice, check_generator, check_like,
                     check_output, check_positive_int, check_real, check_time, describe, full_precision,
                     noise_like)
from .score import as_score
from .parameterization import PARAMETERIZATIONS, convert
from .preconditioning import vp_sigma
from .sde import SDE, check_sde

REDUCTIONS = ("mean", "sum")  # how to reduce over the data dimensions of each sample


def _reduce(sq: torch.Tensor, reduce: str) -> torch.Tensor:
    flat = sq.flatten(1)
    return flat.mean(1) if reduce == "mean" else flat.sum(1)


def _simple(sde, t):
    return sde.marginal_coeffs(t)[1] ** 2


def _likelihood(sde, t):
    return sde.coefficients(t)[1] ** 2


def _v(sde, t):
    alpha, sigma = sde.marginal_coeffs(t)
    return (sigma / alpha) ** 2


WEIGHTINGS = {"simple": _simple, "likelihood": _likelihood, "v": _v}


class LikelihoodImportanceSampler:
    """Draws t with density q(t) ∝ g(t)²/σ_t² on [eps, T] (Song, Durkan et al. 2021, Sec. 5.1).

    t comes from the piecewise-linear inverse of the CDF tabulated on a log-spaced grid; `density`
    returns the density of exactly that sampler, so λ(t)/q(t) keeps the estimator unbiased.
    """

    def __init__(self, sde: SDE, eps: float, grid_size: int = 4096):
        check_sde(sde)
        eps = check_real(eps, "eps", 0, sde.T, inclusive=(False, False), symbol="(0, T)")
        check_positive_int(grid_size, "grid_size", minimum=2)
        grid = torch.logspace(math.log10(eps), math.log10(sde.T), grid_size, dtype=torch.float64)
        g2 = sde.coefficients(grid)[1] ** 2
        q = g2 / sde.marginal_coeffs(grid)[1] ** 2
        cdf = torch.cat([q.new_zeros(1), torch.cumsum(0.5 * (q[1:] + q[:-1]) * grid.diff(), 0)])
        self.grid, self.cdf = grid, cdf / cdf[-1]

    def sample(self, n: int, generator=None, device=None, dtype=torch.float32):
        """Return t [n] and its sampling density q(t) [n]."""
        u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        grid, cdf = self.grid.to(u.device), self.cdf.to(u.device)
        j = torch.searchsorted(cdf, u, right=True).clamp(1, len(cdf) - 1) - 1
        width, mass = grid[j + 1] - grid[j], cdf[j + 1] - cdf[j]
        t = grid[j] + (u - cdf[j]) / mass * width
        return t.to(dtype), (mass / width).to(dtype)


class DSMLoss:
    """Weighted denoising score matching; call it as `loss(score_fn, x0)` for the batch mean."""

    def __init__(self, sde: SDE, weighting="simple", eps: float = 1e-5, reduce: str = "mean",
                 importance_sampling: bool = False):
        check_sde(sde)
        if not callable(weighting):
            check_choice(weighting, "weighting", WEIGHTINGS)
        check_choice(reduce, "reduce", REDUCTIONS)
        eps = check_real(eps, "eps", 0, sde.T, inclusive=(False, False), symbol="(0, T)")
        check_bool(importance_sampling, "importance_sampling")
        if importance_sampling and weighting != "likelihood":
            raise ValueError(f"importance_sampling=True needs weighting='likelihood', got weighting={weighting!r}")
        self.sde, self.eps, self.reduce = sde, eps, reduce  # reduce: over data dims
        # λ(sde, t); a user callable takes t only
        self.weight_fn = (lambda sde, t: weighting(t)) if callable(weighting) else WEIGHTINGS[weighting]
        self.sampler = LikelihoodImportanceSampler(sde, eps) if importance_sampling else None

    def sample_t(self, n, generator, device, dtype):
        """t ~ U(eps, T) and the factor λ(t) (or λ(t)/(q(t)(T − eps)) under importance sampling)."""
        if self.sampler is None:
            t = self.eps + (self.sde.T - self.eps) * torch.rand(n, generator=generator, device=device, dtype=dtype)
            return t, self.weight_fn(self.sde, t)
        t, q = self.sampler.sample(n, generator, device, dtype)
        return t, self.weight_fn(self.sde, t) / (q * (self.sde.T - self.eps))

    def per_sample(self, score_fn: Callable, x0: torch.Tensor, generator=None, t=None, noise=None):
        """Per-sample losses [B]; pass t (with λ(t) applied) and noise to fix the draws."""
        score_fn = as_score(score_fn)
        _check_batch_args(x0, generator, noise)
        if t is None:
            t, weight = self.sample_t(x0.shape[0], generator, x0.device, x0.dtype)
        else:
            check_time(t, self.sde.T, batch=x0.shape[0])
            weight = self.weight_fn(self.sde, t)
        z = noise_like(x0, generator) if noise is None else noise
        # A prior N(μ, Σ): the loss of x̃ = L⁻¹(x − μ) with the score Lᵀ s of x̃, i.e. PriorGrad's Σ⁻¹-norm loss.
        score_fn, x0 = self.sde.whitened_score(score_fn), self.sde.whiten(x0)
        mean, std = self.sde.standard.marginal_prob(x0, t)
        std = append_dims(std, x0.ndim)
        x_t = mean + std * z
        score = check_output(score_fn(x_t, t), x_t)
        return weight * _reduce((score + z / std) ** 2, self.reduce)

    def __call__(self, score_fn, x0, generator=None, t=None, noise=None) -> torch.Tensor:
        return self.per_sample(score_fn, x0, generator, t, noise).mean()


class DDPMLoss:
    """DDPM's discrete loss ‖ε − ε_θ(√ᾱ_i x_0 + √(1−ᾱ_i) ε, i)‖², i ~ U{0…N−1} (Ho et al. 2020, Algorithm 1)."""

    def __init__(self, sde: SDE, parameterization: str = "eps", reduce: str = "mean"):
        if not check_sde(sde).ddpm_lattice:
            raise ValueError(f"DDPMLoss needs an SDE with discrete DDPM betas (VPSDE), got {type(sde).__name__}")
        check_choice(reduce, "reduce", REDUCTIONS)
        check_choice(parameterization, "parameterization", PARAMETERIZATIONS)
        self.sde, self.parameterization, self.reduce = sde, parameterization, reduce

    def per_sample(self, model: Callable, x0: torch.Tensor, generator=None, index=None, noise=None):
        """Per-sample losses [B]; `model(x, index)` gets integer timesteps in {0, …, N−1}."""
        check_callable(model, "model", "model(x, index) returning a tensor shaped like x")
        _check_batch_args(x0, generator, noise)
        if index is None:
            index = torch.randint(0, self.sde.N, (x0.shape[0],), generator=generator, device=x0.device)
        else:
            self.check_index(index, x0.shape[0])
        z = noise_like(x0, generator) if noise is None else noise
        x0 = self.sde.whiten(x0)  # a prior N(μ, Σ): the network learns ε of x̃ = L⁻¹(x − μ) (PriorGrad, Eq. 6)
        abar = self.sde.alphas_cumprod.to(x0.device)[index].to(x0.dtype)
        alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
        x_t = append_dims(alpha, x0.ndim) * x0 + append_dims(sigma, x0.ndim) * z
        out = check_output(model(x_t, index), x_t, "model")
        eps_pred = convert(out, x_t, alpha, sigma, self.parameterization, "eps")
        return _reduce((z - eps_pred) ** 2, self.reduce)

    def __call__(self, model, x0, generator=None, index=None, noise=None) -> torch.Tensor:
        return self.per_sample(model, x0, generator, index, noise).mean()

    def check_index(self, index, batch: int) -> None:
        """index must be integers [B] in {0, …, N−1}: −1 must not wrap round to the last step."""
        if not isinstance(index, torch.Tensor) or index.dtype.is_floating_point or index.dtype.is_complex \
                or index.dtype == torch.bool or index.shape != (batch,):
            raise ValueError(f"index must be an integer tensor of shape [B] = ({batch},) of DDPM steps in "
                             f"{{0, …, N−1}}, got {describe(index)}")
        if index.numel() and not bool(((index >= 0) & (index < self.sde.N)).all()):
            raise ValueError(f"index must lie in {{0, …, N−1}} = {{0, …, {self.sde.N - 1}}}, got values in "
                             f"[{index.min().item()}, {index.max().item()}]")


def given_labels(loss, y):
    """The loss (DSMLoss, DDPMLoss) of a batch with class labels y: its SDE's per-class prior selected
    (scoresde.prior.ClassPrior); the loss itself when the prior does not depend on the class."""
    sde = loss.sde.given(y)
    if sde is loss.sde:
        return loss
    out = copy.copy(loss)
    out.sde = sde
    return out


def drop_labels(y: torch.Tensor, p_uncond: float, num_classes: int, generator=None) -> torch.Tensor:
    """Label dropout (Ho & Salimans 2022, Algorithm 1): each label becomes ∅ = num_classes with probability
    p_uncond, so one network learns the conditional and the unconditional score."""
    p_uncond = check_real(p_uncond, "p_uncond", 0, 1)
    check_positive_int(num_classes, "num_classes")
    check_generator(generator, y.device)
    drop = torch.rand(y.shape, generator=generator, device=y.device) < p_uncond
    return torch.where(drop, torch.full_like(y, num_classes), y)


class ClassifierLoss:
    """Cross-entropy of a noise-aware classifier on x_t ~ q(x_t | x_0), t ~ U(eps, T): it learns p(y | x_t, t)
    for classifier guidance (Dhariwal & Nichol 2021, Sec. 4; Song et al. 2021, App. I.1)."""

    def __init__(self, sde: SDE, eps: float = 1e-5):
        check_sde(sde)
        self.sde = sde
        self.eps = check_real(eps, "eps", 0, sde.T, inclusive=(False, False), symbol="(0, T)")

    def noisy(self, x0: torch.Tensor, generator=None, t=None):
        """(x_t, t) with t ~ U(eps, T) unless given."""
        _check_batch_args(x0, generator, None)
        if t is None:
            t = self.eps + (self.sde.T - self.eps) * torch.rand(x0.shape[0], generator=generator, device=x0.device,
                                                                 dtype=x0.dtype)
        mean, std = self.sde.marginal_prob(x0, t)
        return mean + append_dims(std, x0.ndim) * noise_like(x0, generator), t

    def per_sample(self, classifier: Callable, x0: torch.Tensor, y: torch.Tensor, generator=None, t=None):
        """Per-sample −log p_θ(y | x_t, t) [B]."""
        check_callable(classifier, "classifier", "classifier(x, t) returning logits [B, K]")
        if not isinstance(y, torch.Tensor) or y.shape != x0.shape[:1] or y.dtype != torch.long:
            raise ValueError(f"y must be class labels, a long tensor [{x0.shape[0]}], got {describe(y)}")
        x_t, t = self.noisy(x0, generator, t)
        logits = classifier(x_t, t)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != x0.shape[0]:
            raise ValueError(f"classifier must return logits [B, K], got {describe(logits)}")
        return torch.nn.functional.cross_entropy(full_precision(logits), y, reduction="none")

    def __call__(self, classifier, x0, y, generator=None, t=None) -> torch.Tensor:
        return self.per_sample(classifier, x0, y, generator, t).mean()


def _check_batch_args(x0, generator, noise) -> None:
    """The data, generator and noise every loss receives: finite x0 [B, ...], noise shaped like it."""
    check_batch(x0, "x0", finite=True)
    check_generator(generator, x0.device)
    if noise is not None:
        check_like(noise, x0, "noise", "x0")


# σ densities of EDM's objective: (P_mean, P_std) of ln σ ~ N(P_mean, P_std²) (Karras et al. 2022, 2024)
SIGMA_PRESETS = {"edm": (-1.2, 1.2), "edm2_512": (-0.4, 1.0), "edm2_64": (-0.8, 1.6)}
SIGMA_DENSITIES = ("lognormal", "loguniform", "vp")
SIGMA_WEIGHTS = ("edm", "inverse_square")
VP_EPS_T = 1e-5  # EDM's VPLoss draws u ~ U(1e-5, 1)


class EDMLoss:
    """EDM's objective E_σ λ(σ) ‖D(x₀ + σ n; σ) − x₀‖² (Karras et al. 2022, Eq. 2 and Table 1), λ = (σ² + σ_d²)/(σ σ_d)².

    σ is EDM's noise level σ_t/α_t on `sde` (x_t = α_t x₀ + σ_t ε), drawn from ln σ ~ N(P_mean, P_std²),
    log-uniformly on [σ(eps), σ(T)], or as σ_vp(u) with u ~ U(eps, 1) on EDM's VP schedule ("vp"), and kept in the
    SDE's range; t is its time, and D = (x_t + σ_t² s)/α_t is the
    x₀-prediction of the score s. Since D − x₀ = (σ_t²/α_t)(s − ∇log p(x_t | x₀)), this is weighted DSM with t drawn
    from σ's density and weight λ(σ) σ_t⁴/α_t² (`dsm_weight`); tests check the identity on identical draws.

    weight="inverse_square" is λ = 1/σ² of EDM's VP and VE baselines (Table 1, with density "vp" and "loguniform"):
    since D − x₀ = σ (ε − ε̂), that loss is ‖ε̂ − ε‖², L_simple at σ's density.
    """

    def __init__(self, sde: SDE, sigma_data: float = 0.5, P_mean: float = -1.2, P_std: float = 1.2,
                 density: str = "lognormal", eps: float | None = None, reduce: str = "mean", weight: str = "edm"):
        self.sde = check_sde(sde)
        self.sigma_data = check_real(sigma_data, "sigma_data", low=0, inclusive=(False, True))
        self.P_mean, self.P_std = check_real(P_mean, "P_mean"), check_real(P_std, "P_std", low=0, inclusive=(False, True))
        self.density, self.reduce = check_choice(density, "density", SIGMA_DENSITIES), check_choice(reduce, "reduce", REDUCTIONS)
        self.lambda_ = check_choice(weight, "weight", SIGMA_WEIGHTS)
        self.eps = sde.sampling_eps if eps is None else check_real(eps, "eps", 0, sde.T, inclusive=(False, False))
        ends = torch.tensor([self.eps, sde.T], dtype=torch.float64)
        alpha, sigma = sde.marginal_coeffs(ends)
        self.sigma_range = (sigma / alpha).tolist()  # EDM's σ at eps and at T

    def sample_sigma(self, n: int, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
        lo, hi = self.sigma_range
        if self.density == "lognormal":
            z = torch.randn(n, generator=generator, device=device, dtype=torch.float64)
            return (self.P_mean + self.P_std * z).exp().clamp(lo, hi).to(dtype)
        u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        if self.density == "vp":  # EDM's VPLoss: u ~ U(ε_t, 1), σ = σ_vp(u)
            return vp_sigma(VP_EPS_T + (1 - VP_EPS_T) * u).clamp(lo, hi).to(dtype)
        return (math.log(lo) + u * math.log(hi / lo)).exp().clamp(lo, hi).to(dtype)

    def time_of(self, sigma: torch.Tensor) -> torch.Tensor:
        """The t at which σ_t/α_t = σ (log SNR −ln σ), by bisection in float64."""
        from .sampling.grids import t_of_log_snr
        return t_of_log_snr(self.sde, -sigma.double().log(), self.sde.T, self.eps).to(sigma.dtype)

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """λ(σ) = (σ² + σ_d²)/(σ σ_d)² (EDM), or 1/σ² (its VP and VE baselines)."""
        if self.lambda_ == "inverse_square":
            return 1 / sigma**2
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def dsm_weight(self, t: torch.Tensor) -> torch.Tensor:
        """The weight of DSM at t that makes it this loss: λ(σ_t/α_t) σ_t⁴/α_t²."""
        alpha, sigma = self.sde.marginal_coeffs(t)
        return self.weight(sigma / alpha) * sigma**4 / alpha**2

    def per_sample(self, score_fn: Callable, x0: torch.Tensor, generator=None, sigma=None, noise=None):
        """Per-sample losses [B]; pass sigma [B] (EDM's noise levels) and noise to fix the draws."""
        score_fn = as_score(score_fn)
        _check_batch_args(x0, generator, noise)
        sigma = self.sample_sigma(x0.shape[0], generator, x0.device, x0.dtype) if sigma is None else sigma
        t = self.time_of(sigma)
        alpha, std = (append_dims(v, x0.ndim) for v in self.sde.marginal_coeffs(t))
        z = noise_like(x0, generator) if noise is None else noise
        x_t = alpha * x0 + std * z
        denoised = (x_t + std**2 * check_output(score_fn(x_t, t), x_t)) / alpha
        return self.weight(sigma) * _reduce((denoised - x0) ** 2, self.reduce)

    def __call__(self, score_fn, x0, generator=None, sigma=None, noise=None) -> torch.Tensor:
        return self.per_sample(score_fn, x0, generator, sigma, noise).mean()

    @staticmethod
    def with_uncertainty(per_sample: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """EDM2's loss with a learned uncertainty u(σ) (Karras et al. 2024, Eq. 8): L/e^u + u per sample. At its
        minimum over u, e^u = L: the losses of every σ are brought to the same scale."""
        return per_sample / u.exp() + u
