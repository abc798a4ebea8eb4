"""PriorGrad's process (Lee et al. 2022): any SDE of scoresde.sde, diffusing towards a data prior N(μ, Σ).

x_t = α_t x_0 + (1 − α_t) μ + σ_t L z with Σ = L Lᵀ (scoresde.prior). In x̃ = L⁻¹(x − μ) this is the wrapped
SDE's own process with the standard prior, so samplers, losses and the likelihood run on x̃ (`standard`,
`whiten`, `whitened_score`), and `coefficients`, `sde`, `discretize`, `reverse` and every declared capability
are the wrapped SDE's. Only what sees x itself changes: `marginal_prob`, `prior_sampling` and `prior_logp`.

    sde = PriorSDE(VPSDE(), estimate_prior(x_train))   # or VPSDE().with_prior(prior)
"""
from __future__ import annotations

import torch

from ._utils import ArgumentTypeError, describe
from .prior import ClassPrior, GaussianPrior
from .score import as_score
from .sde import check_sde


class PriorSDE:
    """`base` with the prior N(μ, Σ) = `prior` (a GaussianPrior, or a ClassPrior selected per batch by `given`)."""

    def __init__(self, base, prior):
        if not isinstance(prior, (GaussianPrior, ClassPrior)):
            raise ArgumentTypeError(f"prior must be a scoresde.prior.GaussianPrior or ClassPrior, got {describe(prior)}")
        base = check_sde(base, "base")
        self.base = base.standard  # a prior replaces the base's own prior, if it had one
        self.prior = prior

    def __getattr__(self, name):
        """Everything about the process of x̃ (T, N, coefficients, schedules, ddpm_lattice, ...) is the base's."""
        if name in ("base", "prior") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def __repr__(self):
        return f"PriorSDE({self.base!r}, {self.prior!r})"

    # -- the prior's hooks -----------------------------------------------------------------------------------------
    @property
    def standard(self):
        """The base SDE: the process of the whitened x̃ = L⁻¹(x − μ), which samplers run."""
        return self.base

    def with_prior(self, prior):
        return self.base.with_prior(prior)

    def given(self, y) -> "PriorSDE":
        """The process of a batch with class labels y: a per-class prior selects each sample's N(μ_y, Σ_y)."""
        return PriorSDE(self.base, self.prior.given(y))

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        """x̃ = L⁻¹(x − μ)."""
        return self.prior.whiten(x)

    def unwhiten(self, x: torch.Tensor) -> torch.Tensor:
        """x = μ + L x̃."""
        return self.prior.unwhiten(x)

    def unwhiten_score(self, score: torch.Tensor) -> torch.Tensor:
        """∇log p_t(x) = L⁻ᵀ ∇log p̃_t(x̃)."""
        return self.prior.unwhiten_score(score)

    def whitened_score(self, score_fn):
        """The Score of x → the score s̃(x̃, t) = Lᵀ s(μ + L x̃, t) of x̃; every declared fact carries over, and the
        result declares `whitened`."""
        score, prior = as_score(score_fn), self.prior

        def pairs(x, t):
            s, v = score.outputs(prior.unwhiten(x), t)
            return prior.whiten_score(s), v
        return score.derive(pairs, whitened=True)

    # -- what sees x itself ------------------------------------------------------------------------------------------
    def marginal_prob(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean α_t x_0 + (1 − α_t) μ and std σ_t √diag(Σ), shaped like x (a full Σ has no elementwise std: use
        `whiten`)."""
        mean, sigma = self.base.marginal_prob(self.whiten(x), t)
        return self.unwhiten(mean), self.prior.kernel_std(sigma, x)

    def prior_sampling(self, shape, generator=None, device=None, dtype=None) -> torch.Tensor:
        """x_T = μ + prior_std L z."""
        return self.unwhiten(self.base.prior_sampling(shape, generator, device, dtype))

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; μ, prior_std² Σ) per sample, shape [B]."""
        return self.base.prior_logp(self.whiten(z)) - self.prior.log_det(z)


__all__ = ["PriorSDE"]
