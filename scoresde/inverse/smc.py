"""A sequential Monte Carlo posterior sampler for linear-Gaussian observations, in A's spectral space: a fully
adapted particle filter with MCGdiff's Gaussian potentials (Cardoso, Janati, Le Corff & Moulines 2024, Sec. 3).

Coordinates x̄ = Vᵀx, ȳ = Σ⁺Uᵀy (observed where s_i > 0, with noise σ_y/s_i). The potential at t ties the observed
coordinates to the observation noised to t:
    g_t(x_t) = Π_i N(α_t ȳ_i; x̄_t,i, γ_t,i),   γ_t,i = α_t² σ_y²/s_i² + σ_t²,
and the target at t is p(x_T) Π p(x_s | x_t) · g_t(x_t), with p(x_s | x_t) = N(m(x_t), c² I) the wrapped
sampler's move. Each step from t to s reweights the particles by Z_s(x_t)/g_t(x_t), Z_s(x_t) = ∫ p(x_s | x_t) g_s(x_s)
dx_s = Π_i N(α_s ȳ_i; m̄_i, c² + γ_s,i), resamples (systematic, when the effective sample size falls below
`threshold` · N) and draws x_s from the exact product p(x_s | x_t) g_s(x_s) / Z_s, per coordinate Gaussian.
After the last grid time, x_0 = x̂_0(x_eps); with σ_y > 0 the weights take the exact likelihood N(ȳ; x̄_0, σ_y²/s²)
over g_eps, with σ_y = 0 the observed coordinates are set to ȳ. So the weighted particles target the posterior of
the model's own sampler, exactly as N → ∞ (for σ_y = 0, as the grid's last σ → 0 too). Each observation gets N
particles, run as one batch; the output is one particle per observation, drawn by the final weights, and
`Solution.info` holds all particles, their log-weights and the effective sample size (ESS) of every step.
The NFE is per particle: the network sees N times the batch. No step size to tune; N trades cost for accuracy.
"""
from __future__ import annotations

import torch

from .._utils import check_positive_int, check_real, noise_like
from .base import Solver, safe_inverse


def systematic(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Systematic resampling: indices [B, N] from normalised weights [B, N] and one uniform per row, u [B]."""
    N = weights.shape[1]
    points = (u[:, None] + torch.arange(N, device=weights.device, dtype=weights.dtype)) / N
    cdf = weights.cumsum(1)
    cdf[:, -1] = 1.0  # no index N from round-off
    return torch.searchsorted(cdf, points).clamp(max=N - 1)


def ess(log_weights: torch.Tensor) -> torch.Tensor:
    """Effective sample size (Σw)²/Σw² per row of log-weights [B, N]."""
    w = torch.softmax(log_weights, dim=1)
    return 1 / (w**2).sum(1)


class SMC(Solver):
    """The particle filter above, with `particles` per observation."""

    method = "smc"
    options = ("particles", "threshold")

    def __init__(self, sampler, operator, y, sigma_y: float = 0.0, shape=None, particles: int = 16,
                 threshold: float = 0.5):
        super().__init__(sampler, operator, y, sigma_y, shape)
        if self.eta == 0:
            raise ValueError("method 'smc' needs a stochastic move (its proposals are Gaussian): sampler "
                             "'ancestral', or 'ddim' with eta > 0, got ddim with eta=0")
        if self.return_trajectory:
            raise ValueError("method 'smc' returns one particle per observation, drawn by the final weights; a "
                             "trajectory of weighted particles is not available: use return_trajectory=False")
        self.particles = check_positive_int(particles, "particles")  # N per observation
        self.threshold = check_real(threshold, "threshold", 0, 1)  # resample when ESS < threshold · N (1: always)

    def batch_shape(self):
        return (self.y.shape[0] * self.particles, *self.shape)

    def __call__(self, score_fn, sde, generator=None, seeds=None):
        if seeds is not None:
            raise ValueError("method 'smc' draws the noise of all of an observation's particles together: give "
                             "generator, not seeds")
        return super().__call__(score_fn, sde, generator=generator)

    def tables(self, score, sde, ts, x):
        c = super().tables(score, sde, ts, x)
        c["y"] = c["y"].repeat_interleave(self.particles, dim=0)
        return c

    def start(self, x, c):
        op = self.operator
        s, ybar = self.spectral_y(c, x)
        noise_y = torch.zeros(s.shape, dtype=x.dtype, device=x.device)
        noise_y = torch.where(s > 0, self.sigma_y * safe_inverse(s), noise_y)
        c.update(observed=op.observed(x), ybar=op.pad(ybar), noise_y2=op.pad((noise_y**2)[None])[0])
        self._log_w = self.log_g(x, 0, c)
        self._ess = []
        return x

    def gamma(self, k, c):
        """γ_t,i = α_t² σ_y²/s_i² + σ_t² at grid time k."""
        return c["alpha"][k] ** 2 * c["noise_y2"] + c["sigma"][k] ** 2

    def log_g(self, x, k, c, xbar=None):
        """log g_t(x_t) per particle (up to a constant)."""
        xbar = self.operator.Vt(x) if xbar is None else xbar
        gap = (c["alpha"][k] * c["ybar"] - xbar).abs() ** 2 / self.gamma(k, c)
        return self.per_row(-0.5 * (gap * c["observed"]).sum(1))

    def per_row(self, v):
        return v.reshape(-1, self.particles)

    def move(self, score, x, k, c, generator):
        op, last = self.operator, k == len(c["t"]) - 1
        x0 = self.x0_hat(score, x, k, c)
        if last:
            return self.finish_particles(x, x0, c)
        ck2 = c["c"][k] ** 2
        mbar = op.Vt(self.ddim(x, x0, k, c, 0.0))
        gamma_s, target = self.gamma(k + 1, c), c["alpha"][k + 1] * c["ybar"]
        log_z = self.per_row(-0.5 * ((target - mbar).abs() ** 2 / (ck2 + gamma_s) * c["observed"]).sum(1))
        self._log_w = self._log_w + log_z - self.log_g(x, k, c)
        mbar = self.resample(mbar, generator)
        mean = torch.where(c["observed"], (gamma_s * mbar + ck2 * target) / (ck2 + gamma_s), mbar)
        var = torch.where(c["observed"], ck2 * gamma_s / (ck2 + gamma_s), ck2)
        return op.V(mean + var.sqrt() * op.Vt(noise_like(x, generator)))

    def resample(self, v, generator):
        """Record the ESS; if it is below threshold · N, resample the rows of v [B·N, ...] and reset the weights."""
        current = ess(self._log_w)
        self._ess.append(current)
        redo = current < self.threshold * self.particles
        if not bool(redo.any()):
            return v
        B, N = self._log_w.shape
        u = torch.rand(B, generator=generator, device=v.device, dtype=self._log_w.dtype)
        idx = systematic(torch.softmax(self._log_w, 1), u)
        idx = torch.where(redo[:, None], idx, torch.arange(N, device=v.device))
        self._log_w = torch.where(redo[:, None], torch.zeros_like(self._log_w), self._log_w)
        flat = (idx + N * torch.arange(B, device=v.device)[:, None]).flatten()
        return v[flat]

    def finish_particles(self, x, x0, c):
        """x_0 per particle, and the final weights."""
        op, k = self.operator, len(c["t"]) - 1
        xbar0 = op.Vt(x0)
        if self.sigma_y > 0:
            observed = c["observed"]
            gap = (c["ybar"] - xbar0).abs() ** 2 / torch.where(observed, c["noise_y2"], 1.0)
            self._log_w = (self._log_w + self.per_row(-0.5 * torch.where(observed, gap, 0.0).sum(1))
                           - self.log_g(x, k, c))
        else:
            x0 = op.V(torch.where(c["observed"], c["ybar"], xbar0))
        self._ess.append(ess(self._log_w))
        return x0

    def finalize(self, x, generator):
        """One particle per observation, drawn by the final weights."""
        B, N = self._log_w.shape
        particles = x.reshape(B, N, *x.shape[1:])
        w = torch.softmax(self._log_w, 1)
        u = torch.rand(B, generator=generator, device=x.device, dtype=w.dtype)
        pick = torch.searchsorted(w.cumsum(1), u[:, None]).clamp(max=N - 1)[:, 0]
        self._info = {"particles": particles, "log_weights": torch.log_softmax(self._log_w, 1),
                      "ess": torch.stack(self._ess, 1), "particles_per_observation": N}
        return particles[torch.arange(B, device=x.device), pick]

    def report(self):
        return self._info
