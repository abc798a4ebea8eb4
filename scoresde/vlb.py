"""The discrete variational bound of a diffusion model's chain (Ho et al. 2020, Eq. 5), per term and in bits/dim.

    L_vlb = L_T + Σ_{t=2}^{T} L_{t−1} + L_0
    L_T     = KL(q(x_T | x_0) ‖ p(x_T))
    L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)),  x_t ~ q(x_t | x_0)
    L_0     = −log p_θ(x_0 | x_1)   (the discretised Gaussian decoder of Ho et al. 2020, Eq. 13, for 8-bit data)
The chain is the model's own: DDPM's steps t_i = iT/N (or a respaced subsequence, `scoresde.respace`) with the
marginals the model sees (DDPM's ᾱ_i for a discrete-time score, ᾱ(t_i) for a continuous one). The model's
mean is the posterior mean μ̃(x_t, x̂_0) with x̂_0 = (x_t + σ_t² s_θ)/α_t, its variance any of
`scoresde.variances` (fixed β or β̃, learned, analytic). Each L_{t−1} uses one draw of x_t per sample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._utils import append_dims, check_batch, check_choice, check_generator, noise_like
from .score import as_score
from .respace import respaced_times
from .sde import posterior_coeffs
from .sampling.grids import for_model
from .sde import check_sde
from .variances import (analytic_variance, interpolated_log_variance, log_beta_pair, resolve_variance,
                        score_second_moment)

DECODERS = ("discretized", "gaussian")  # 8-bit data in [−1, 1] (Ho et al. 2020, Eq. 13), or a density
BIN = 1.0 / 255.0  # half the width of an 8-bit bin in [−1, 1]


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) per element, in nats."""
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1)


def log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 − e^d) for d ≤ 0, accurate at both ends (Mächler 2012)."""
    return torch.where(d > -math.log(2), torch.log(-torch.expm1(d)), torch.log1p(-torch.exp(d)))


def log_normal_mass(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(Φ(b) − Φ(a)) for a < b, from the tail nearer to 0 so that neither tail cancels."""
    flip = a > 0  # Φ(b) − Φ(a) = Φ(−a) − Φ(−b)
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_hi = torch.special.log_ndtr(hi)
    return log_hi + log1mexp(torch.special.log_ndtr(lo) - log_hi)


def discretized_gaussian_log_likelihood(x0: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """log ∫_{δ−(x)}^{δ+(x)} N(y; μ, σ²) dy per element, δ± = x ± 1/255 with ±∞ at the ends ±1 (Ho et al. 2020, Eq. 13)."""
    inv_std = torch.exp(-0.5 * log_var)
    lo = torch.where(x0 <= -1 + BIN, torch.full_like(x0, -math.inf), (x0 - BIN - mean) * inv_std)
    hi = torch.where(x0 >= 1 - BIN, torch.full_like(x0, math.inf), (x0 + BIN - mean) * inv_std)
    return log_normal_mass(lo, hi)


def gaussian_log_likelihood(x0, mean, log_var) -> torch.Tensor:
    """log N(x0; μ, σ²) per element: the decoder for continuous data (a density, not a probability)."""
    return -0.5 * (math.log(2 * math.pi) + log_var + (x0 - mean) ** 2 * torch.exp(-log_var))


DECODER_FNS = {"discretized": discretized_gaussian_log_likelihood, "gaussian": gaussian_log_likelihood}


def _sum(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).sum(1)


class Chain:
    """The model's Markov chain x_{t_K} → … → x_{t_1} → x_0 on a decreasing grid ts, with per-step coefficients.

    Step k goes from t = ts[k] to s = ts[k + 1] (s = 0 after the last, with α_0 = 1, σ_0 = 0: the decoder).
    """

    def __init__(self, score_fn, sde, respacing=None):
        score_fn = as_score(score_fn)
        check_sde(sde)
        ts = respaced_times(list(range(sde.N)) if respacing is None else respacing, sde.N, sde.T)
        self.sde, self.ts = for_model(sde, ts, score_fn)  # the model's marginals; ts unchanged (already on DDPM steps)
        alpha, sigma = self.sde.marginal_coeffs(self.ts)
        zero = torch.zeros(1, dtype=torch.float64)
        alpha_s, sigma_s = torch.cat([alpha[1:], zero + 1]), torch.cat([sigma[1:], zero])
        self.alpha_t, self.sigma_t, self.alpha_s, self.sigma_s = alpha, sigma, alpha_s, sigma_s  # [K] each
        a, self.beta, self.beta_tilde = posterior_coeffs(alpha, sigma, alpha_s, sigma_s)
        self.c_x, self.c_0 = a * sigma_s**2 / sigma**2, alpha_s * self.beta / sigma**2  # μ̃ = c_x x_t + c_0 x_0
        self.log_beta, self.log_beta_tilde = log_beta_pair(self.beta, self.beta_tilde)  # β̃ at t_1 → 0 clipped

    def __len__(self):
        return len(self.ts)

    def prior_term(self, x0: torch.Tensor, prior_std: float) -> torch.Tensor:
        """L_T = KL(N(α_T x_0, σ_T²) ‖ N(0, prior_std²)) per sample, at the chain's first time."""
        mean = self.alpha_t[0].to(x0.dtype) * x0
        log_var = torch.full_like(x0, 2 * math.log(float(self.sigma_t[0])))
        return _sum(normal_kl(mean, log_var, torch.zeros_like(x0), torch.full_like(x0, 2 * math.log(prior_std))))

    def terms(self, score_fn, x0: torch.Tensor, k: torch.Tensor, variances, noise=None, generator=None,
              decoder: str = "discretized", gamma=None, detach_mean: bool = False) -> dict:
        """{variance: per-sample term [B]} of step k [B] (an integer per sample): L_{t−1}, or L_0 at the last step.

        One model call serves every variance. detach_mean: stop the gradient through μ_θ (Nichol & Dhariwal's
        L_vlb term of L_hybrid trains only the variance).
        """
        return self.evaluate(score_fn, x0, k, variances, noise, generator, decoder, gamma, detach_mean)[0]

    def evaluate(self, score_fn, x0, k, variances, noise=None, generator=None, decoder="discretized", gamma=None,
                 detach_mean=False):
        """`terms`, and the noise z and the model's ε̂ = −σ_t s_θ(x_t, t) of the same call (for L_simple)."""
        co = {name: append_dims(getattr(self, name).to(x0.device)[k].to(x0.dtype), x0.ndim)
              for name in ("ts", "alpha_t", "sigma_t", "alpha_s", "sigma_s", "c_x", "c_0", "log_beta", "log_beta_tilde")}
        if gamma is not None:
            co["gamma"] = append_dims(torch.as_tensor(gamma).to(x0.device)[k].to(x0.dtype), x0.ndim)
        z = noise_like(x0, generator) if noise is None else noise
        x_t = co["alpha_t"] * x0 + co["sigma_t"] * z
        t = co["ts"].flatten()
        score_fn = as_score(score_fn)
        if "learned" in variances:
            score, v = score_fn.score_and_v(x_t, t)
        else:
            score, v = score_fn(x_t, t), None
        x0_hat = (x_t + co["sigma_t"] ** 2 * score) / co["alpha_t"]
        mean = co["c_x"] * x_t + co["c_0"] * (x0_hat.detach() if detach_mean else x0_hat)
        mean_q, log_var_q = co["c_x"] * x_t + co["c_0"] * x0, co["log_beta_tilde"]
        last = (k == len(self) - 1).nonzero()[:, 0]  # these samples are at the decoder step
        out = {}
        for name in variances:
            log_var = self.log_variance(name, co, v).expand_as(x0)
            term = _sum(normal_kl(mean_q, log_var_q, mean, log_var))
            if len(last):  # only where needed: an unused -inf would poison the gradient
                nll = -_sum(DECODER_FNS[decoder](x0[last], mean[last], log_var[last]))
                term = term.index_put((last,), nll)
            out[name] = term
        return out, z, -co["sigma_t"] * score

    @staticmethod
    def log_variance(name: str, co: dict, v):
        """log Σ of p_θ(x_s | x_t) for the coefficients `co` of the steps (see scoresde.variances)."""
        if name == "beta":
            return co["log_beta"]
        if name == "beta_tilde":
            return co["log_beta_tilde"]
        if name == "learned":
            return interpolated_log_variance(v, co["log_beta"], co["log_beta_tilde"])
        return analytic_variance(co["alpha_t"], co["sigma_t"], co["alpha_s"], co["sigma_s"], co["gamma"]).log()


@dataclass
class VariationalBound:
    """The terms of L_vlb per sample, in nats: prior L_T [B], kl L_{t−1} [B, K−1] in the order of `ts`, decoder L_0 [B]."""

    prior: torch.Tensor
    kl: torch.Tensor
    decoder: torch.Tensor
    ts: torch.Tensor  # the time t of each L_{t−1} (decreasing), then t_1 of the decoder
    dims: int  # data dimensions per sample

    @property
    def total(self) -> torch.Tensor:
        """L_vlb per sample, nats."""
        return self.prior + self.kl.sum(1) + self.decoder

    @property
    def bpd(self) -> torch.Tensor:
        """L_vlb per sample in bits/dim."""
        return self.total / (self.dims * math.log(2))

    def summary(self) -> dict:
        """The batch means of L_T, Σ L_{t−1}, L_0 and the total, in bits/dim."""
        scale = 1 / (self.dims * math.log(2))
        return {"prior_bpd": self.prior.mean().item() * scale, "kl_bpd": self.kl.sum(1).mean().item() * scale,
                "decoder_bpd": self.decoder.mean().item() * scale, "bpd": self.bpd.mean().item()}


@torch.no_grad()
def variational_bound(score_fn, sde, x0: torch.Tensor, variance=None, *, decoder: str = "discretized",
                      respacing=None, gamma=None, analytic_data=None, generator=None):
    """L_vlb of the model's chain on data x0 [B, ...]: a VariationalBound, or {variance: VariationalBound} for a tuple.

    variance: a name of `scoresde.variances.VARIANCES` or None (the model's own), or a tuple of them (one model
    call per step serves all). decoder: "discretized" for 8-bit data in [−1, 1], "gaussian" for continuous data.
    respacing: a subsequence of steps (`scoresde.respace`). "analytic" needs gamma (Γ at each step of the chain)
    or analytic_data (data to estimate it from, `variances.score_second_moment`). K model calls in all.
    """
    check_batch(x0, "x0", finite=True)
    check_generator(generator, x0.device)
    check_choice(decoder, "decoder", DECODERS)
    if decoder == "discretized" and not bool((x0.abs() <= 1).all()):
        raise ValueError("decoder='discretized' needs 8-bit data scaled to [-1, 1], got values outside; "
                         "use decoder='gaussian' for continuous data")
    names = tuple(variance) if isinstance(variance, (tuple, list)) else (variance,)
    names = tuple(resolve_variance(v, score_fn) for v in names)
    chain = Chain(score_fn, sde, respacing)
    if "analytic" in names and gamma is None:
        if analytic_data is None:
            raise ValueError("variance='analytic' needs gamma (E||s||^2/d at each step) or analytic_data to estimate it")
        gamma = score_second_moment(score_fn, chain.sde, analytic_data.to(x0.device), chain.ts, generator)
    if gamma is not None:
        gamma = torch.as_tensor(gamma, dtype=torch.float64)
        if gamma.shape != (len(chain),):
            raise ValueError(f"gamma must hold one value per step of the chain ({len(chain)}), got shape {tuple(gamma.shape)}")
    B = x0.shape[0]
    steps = [chain.terms(score_fn, x0, torch.full((B,), k, dtype=torch.long, device=x0.device), names,
                         generator=generator, decoder=decoder, gamma=gamma) for k in range(len(chain))]
    prior = chain.prior_term(x0, sde.prior_std)
    bounds = {name: VariationalBound(prior, torch.stack([s[name] for s in steps[:-1]], 1).reshape(B, -1),
                                     steps[-1][name], chain.ts, x0[0].numel()) for name in names}
    return bounds if isinstance(variance, (tuple, list)) else bounds[names[0]]
