"""PriorGrad's data-dependent prior N(μ, Σ) (Lee et al. 2022), and the whitening that reduces it to N(0, I).

With Σ = L Lᵀ the forward process becomes  x_t = α_t x_0 + (1 − α_t) μ + σ_t L ε,  ε ~ N(0, I),  which is the
standard process in the whitened coordinates x̃ = L⁻¹(x − μ):  x̃_t = α_t x̃_0 + σ_t ε. Hence
    score       ∇log p_t(x) = L⁻ᵀ ∇log p̃_t(x̃)             (`unwhiten_score`; `whiten_score` is Lᵀ)
    likelihood  log p(x) = log p̃(x̃) − log|det L|          (`log_det`)
    loss        ‖L⁻¹(ε_Σ − ε̂_Σ)‖² = ‖ε − ε̂‖²              (PriorGrad's Σ⁻¹-norm loss, Lee et al. 2022, Eq. 6)
and every sampler runs unchanged on x̃ (scoresde.sde.SDE.whiten / unwhiten, identities for the standard prior).
A network works in the whitened coordinates: it sees x̃_t and predicts ε (or x̃_0, ṽ); PriorGrad's ε̂_Σ is L ε̂.

`GaussianPrior(mean, var=None, cov=None)`: Σ diagonal (`var`, any data shape) or full (`cov`, flat data [B, D]);
global (mean of the per-sample data shape) or one per sample (mean [B, ...]). `ClassPrior(means, vars)` holds one
diagonal prior per class and `given(y)` picks the ones of the labels y. `estimate_prior` measures them on data.
"""
from __future__ import annotations

import torch

from ._utils import ArgumentTypeError, check_batch, check_real, describe


def _tensor(value, name: str) -> torch.Tensor:
    """A finite float64 CPU tensor (the prior's parameters are kept in float64 and cast on use)."""
    try:
        out = torch.as_tensor(value).detach().to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ArgumentTypeError(f"{name} must be a tensor of real numbers, got {describe(value)}") from None
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} must be finite, got {describe(value)} with non-finite entries")
    return out


class GaussianPrior:
    """N(μ, Σ) with Σ = L Lᵀ: L = diag(√var) or the Cholesky factor of cov; global, or one per sample."""

    def __init__(self, mean, var=None, cov=None):
        self.mean = _tensor(mean, "mean")  # μ: the per-sample data shape S, or [B, *S] (one per sample)
        if var is not None and cov is not None:
            raise ValueError("give var (a diagonal Σ) or cov (a full Σ), not both")
        self.diagonal = cov is None
        if self.diagonal:  # L = diag(√var), stored as √var shaped like μ
            var = torch.ones_like(self.mean) if var is None else _tensor(var, "var")
            if var.shape != self.mean.shape:
                raise ValueError(f"var must have the shape of mean {tuple(self.mean.shape)}, got {tuple(var.shape)}")
            if not bool((var > 0).all()):
                raise ValueError(f"var must be > 0 everywhere (a diagonal covariance), got values down to "
                                 f"{var.min().item():.3g}")
            self.scale = var.sqrt()
        else:  # L lower triangular [D, D] (global, mean [D]) or [B, D, D] (per sample, mean [B, D])
            cov = _tensor(cov, "cov")
            if cov.shape != (*self.mean.shape, self.mean.shape[-1]) or self.mean.ndim not in (1, 2):
                raise ValueError(f"cov must be [D, D] for a mean [D] (or [B, D, D] for a mean [B, D]), got cov "
                                 f"{tuple(cov.shape)} and mean {tuple(self.mean.shape)}")
            if not torch.allclose(cov, cov.mT):
                raise ValueError("cov must be symmetric")
            L, info = torch.linalg.cholesky_ex(cov)
            if bool((info != 0).any()):
                raise ValueError(f"cov must be positive definite, got eigenvalues down to "
                                 f"{torch.linalg.eigvalsh(cov).min().item():.3g}")
            self.scale = L

    @property
    def data_ndim(self) -> int:
        """Dims of one sample of data (μ's dims, less the batch dim of a per-sample prior: see `_params`)."""
        return self.mean.ndim

    def given(self, y) -> "GaussianPrior":
        """The prior of a batch with labels y: this one (it does not depend on the class)."""
        return self

    def _params(self, x: torch.Tensor):
        """μ and L in x's dtype and device, broadcastable against x [B, ...]. A per-sample prior of batch B also
        serves a batch of k·B, tiled k times (classifier-free guidance evaluates [x; x] in one call)."""
        check_batch(x)
        mean, scale = self.mean, self.scale
        if mean.shape == x.shape[1:]:
            return mean.to(x.device, x.dtype)[None], scale.to(x.device, x.dtype)[None]
        B = mean.shape[0] if mean.ndim else 0
        if mean.ndim != x.ndim or mean.shape[1:] != x.shape[1:] or B == 0 or x.shape[0] % B:
            raise ValueError(f"x must be data [B, ...] whose per-sample shape is the prior mean's {tuple(mean.shape)}, "
                             f"or a batch whose shape is the per-sample prior's (or k times its batch), got x of "
                             f"shape {tuple(x.shape)}")
        k = x.shape[0] // B
        reps = (k,) + (1,) * (scale.ndim - 1)
        return mean.repeat(k, *([1] * (mean.ndim - 1))).to(x.device, x.dtype), scale.repeat(*reps).to(x.device, x.dtype)

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        """x̃ = L⁻¹(x − μ)."""
        mean, L = self._params(x)
        if self.diagonal:
            return (x - mean) / L
        return torch.linalg.solve_triangular(L, (x - mean)[..., None], upper=False)[..., 0]

    def unwhiten(self, z: torch.Tensor) -> torch.Tensor:
        """x = μ + L x̃."""
        mean, L = self._params(z)
        return mean + (L * z if self.diagonal else (L @ z[..., None])[..., 0])

    def whiten_score(self, s: torch.Tensor) -> torch.Tensor:
        """s̃ = Lᵀ s: the score of x̃ from the score s of x."""
        _, L = self._params(s)
        return L * s if self.diagonal else (L.mT @ s[..., None])[..., 0]

    def unwhiten_score(self, s: torch.Tensor) -> torch.Tensor:
        """s = L⁻ᵀ s̃: the score of x from the score s̃ of x̃."""
        _, L = self._params(s)
        if self.diagonal:
            return s / L
        return torch.linalg.solve_triangular(L.mT, s[..., None], upper=True)[..., 0]

    def kernel_std(self, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """σ_t √diag(Σ), shaped like x: the elementwise std of x_t | x_0 (diagonal Σ only)."""
        if not self.diagonal:
            raise ValueError("a full covariance Σ has no elementwise std of x_t | x_0: draw x_t as "
                             "sde.unwhiten(α_t sde.whiten(x_0) + σ_t z) instead")
        _, L = self._params(x)
        return sigma.reshape(-1, *([1] * (x.ndim - 1))).to(L) * L

    def log_det(self, x: torch.Tensor) -> torch.Tensor:
        """log|det L| = ½ log det Σ per sample [B] of a batch x."""
        _, L = self._params(x)
        log_diag = L.log() if self.diagonal else torch.diagonal(L, dim1=-2, dim2=-1).log()
        return log_diag.flatten(1).sum(1).expand(x.shape[0])

    def state_dict(self) -> dict:
        """Plain tensors, loadable with torch.load(weights_only=True)."""
        key = "var" if self.diagonal else "cov"
        return {"kind": "gaussian", "mean": self.mean, key: self.scale**2 if self.diagonal else self.scale @ self.scale.mT}

    def __repr__(self):
        kind = "diagonal" if self.diagonal else "full"
        return f"GaussianPrior(mean {tuple(self.mean.shape)}, {kind} covariance)"


class ClassPrior:
    """One diagonal prior N(μ_k, diag(σ_k²)) per class k: means and vars [K, *S]; `given(y)` selects them."""

    def __init__(self, means, vars):
        self.means, self.vars = _tensor(means, "means"), _tensor(vars, "vars")
        if self.means.ndim < 2 or self.vars.shape != self.means.shape:
            raise ValueError(f"means and vars must both have shape [K, ...] (one row per class), got "
                             f"{tuple(self.means.shape)} and {tuple(self.vars.shape)}")
        GaussianPrior(self.means, self.vars)  # validates var > 0
        self.num_classes = len(self.means)

    def given(self, y) -> GaussianPrior:
        """The per-sample prior of labels y (a LongTensor [B] in {0…K−1}), or the global one of a single class."""
        if y is None:
            raise ValueError(f"a per-class prior (config.sde.prior_per_class=True) needs class labels: the process of "
                             f"x depends on its class; pass labels in {{0, …, {self.num_classes - 1}}}")
        y = torch.as_tensor(y).cpu()
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool or y.ndim > 1:
            raise ArgumentTypeError(f"y must be one class or a 1-D tensor of class labels, got {describe(y)}")
        if y.numel() and not bool(((y >= 0) & (y < self.num_classes)).all()):
            raise ValueError(f"y must be class labels in {{0, …, {self.num_classes - 1}}} for a per-class prior, "
                             f"got values in [{y.min().item()}, {y.max().item()}]")
        return GaussianPrior(self.means[y], self.vars[y])

    def state_dict(self) -> dict:
        return {"kind": "class", "mean": self.means, "var": self.vars}

    def __repr__(self):
        return f"ClassPrior({self.num_classes} classes, mean {tuple(self.means.shape[1:])}, diagonal covariance)"


def prior_from_state(state: dict):
    """A GaussianPrior or ClassPrior from its `state_dict()`."""
    if state["kind"] == "class":
        return ClassPrior(state["mean"], state["var"])
    return GaussianPrior(state["mean"], var=state.get("var"), cov=state.get("cov"))


def estimate_prior(x: torch.Tensor, y: torch.Tensor | None = None, num_classes: int = 0, min_var: float = 1e-4):
    """PriorGrad's prior from data x [N, ...]: the mean and per-dimension variance (floored at min_var), over all
    of x (y None: a GaussianPrior) or per class of the labels y in {0…num_classes−1} (a ClassPrior)."""
    check_batch(x, "x", finite=True)
    min_var = check_real(min_var, "min_var", low=0, inclusive=(False, True))
    x = x.detach().to("cpu", torch.float64)
    if y is None:
        if len(x) < 2:
            raise ValueError(f"x must hold at least 2 samples to estimate a variance, got {len(x)}")
        return GaussianPrior(x.mean(0), x.var(0).clamp(min=min_var))
    y = torch.as_tensor(y).cpu()
    if y.shape != x.shape[:1] or y.is_floating_point():
        raise ValueError(f"y must be integer labels [{len(x)}], one per sample of x, got {describe(y)}")
    counts = torch.bincount(y, minlength=num_classes)
    if len(counts) != num_classes or bool((counts < 2).any()):
        raise ValueError(f"y must hold every class of {{0, …, {num_classes - 1}}} at least twice to estimate its "
                         f"variance, got counts {counts.tolist()}")
    means = torch.stack([x[y == k].mean(0) for k in range(num_classes)])
    vars_ = torch.stack([x[y == k].var(0) for k in range(num_classes)]).clamp(min=min_var)
    return ClassPrior(means, vars_)

