"""Sample-quality metrics: sliced Wasserstein and MMD for low-dimensional data; Fréchet distance and KID on features.

FID and KID are the Fréchet distance and KID computed on Inception features (`scoresde.features`);
the same functions work on any feature network, for example the small classifier trained on digits.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch

from ._utils import ArgumentTypeError, check_generator, check_positive_int, check_real, describe, describe_nonfinite


def _flat(x, name: str = "x", min_samples: int = 1) -> torch.Tensor:
    """x [N, ...] (tensor or array) as a float64 matrix [N, F], with at least min_samples finite rows."""
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise ArgumentTypeError(f"{name} must be a tensor or numpy array of samples [N, ...], got {describe(x)}")
    x = torch.as_tensor(x)
    if x.dtype == torch.bool or x.is_complex() or x.ndim < 1 or len(x) < min_samples:
        raise ValueError(f"{name} must hold at least {min_samples} real-valued samples [N, ...], got {describe(x)}")
    x = x.reshape(x.shape[0], -1).double()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, got {describe_nonfinite(x)}")
    return x


def _pair(x, y, names=("x", "y"), min_samples: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sample sets as matrices of the same dimension."""
    x, y = _flat(x, names[0], min_samples), _flat(y, names[1], min_samples)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{names[0]} and {names[1]} must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    return x, y


def sliced_wasserstein(x, y, p: int = 1, n_projections: int = 256, generator: torch.Generator | None = None) -> float:
    """Sliced p-Wasserstein distance (Rabin et al. 2011): W_p between 1-D projections, averaged over directions.

    p = 1 by default: for multimodal data a mass imbalance Δ between modes a distance d apart costs
    Δ·d in W₁ but √Δ·d in W₂, so the W₂ noise floor of n samples shrinks only like n^(−1/4).
    Sets of unequal size are compared through matching quantiles.
    """
    return SlicedReference(y, p, n_projections, generator)(x)


def mmd(x, y, bandwidths=(0.1, 0.5, 1.0, 2.0, 5.0)) -> float:
    """Unbiased squared MMD (Gretton et al. 2012, Eq. 3) with a sum of Gaussian kernels of the given bandwidths."""
    return MMDReference(y, bandwidths)(x)


class SlicedReference:
    """sliced_wasserstein(·, y) against one fixed reference y, whose sorted projections are computed once."""

    def __init__(self, y, p: int = 1, n_projections: int = 256, generator: torch.Generator | None = None):
        if isinstance(p, bool) or p not in (1, 2):
            raise ValueError(f"p must be 1 or 2, got {p!r}")
        check_positive_int(n_projections, "n_projections")
        check_generator(generator, "cpu")
        self.y, self.p = _flat(y, "y"), p
        g = generator or torch.Generator().manual_seed(0)
        theta = torch.randn(self.y.shape[1], n_projections, generator=g, dtype=torch.float64)
        self.theta = (theta / theta.norm(dim=0)).to(self.y.device)
        self.py = (self.y @ self.theta).sort(0).values

    def __call__(self, x) -> float:
        x, _ = _pair(x, self.y)
        px, py = (x @ self.theta).sort(0).values, self.py
        if len(px) != len(py):
            q = torch.linspace(0, 1, max(len(px), len(py)), dtype=torch.float64, device=x.device)
            px, py = (torch.quantile(v, q, dim=0) for v in (px, py))
        return (px - py).abs().mean().item() if self.p == 1 else ((px - py) ** 2).mean().sqrt().item()


class MMDReference:
    """mmd(·, y) against one fixed reference y: the kernel sum of y with itself is computed once, and a bootstrap
    resample x[index] is scored from the kernel of its distinct samples weighted by their counts, not re-expanded."""

    def __init__(self, y, bandwidths=(0.1, 0.5, 1.0, 2.0, 5.0)):
        if isinstance(bandwidths, numbers.Real):
            bandwidths = (bandwidths,)
        if not isinstance(bandwidths, (tuple, list)) or not bandwidths:
            raise ArgumentTypeError(f"bandwidths must be a non-empty tuple of numbers > 0, got {describe(bandwidths)}")
        self.bandwidths = [check_real(h, "bandwidths", low=0, inclusive=(False, True)) for h in bandwidths]
        self.y = _flat(y, "y", min_samples=2)  # the unbiased estimate needs two samples per set
        kyy, m = self._k(self.y, self.y), len(self.y)
        self.yy = (kyy.sum() - kyy.diag().sum()) / (m * (m - 1))

    def _k(self, a, b):
        d2 = torch.cdist(a, b) ** 2
        return sum(torch.exp(-d2 / (2 * h**2)) for h in self.bandwidths)

    PRECOMPUTE = 4096  # up to this many samples, resampled() keeps their kernel matrix (128 MB at most)

    def resampled(self, x):
        """A function index → MMD² of x[index] against y, for bootstrap resamplings of one sample set: up to
        PRECOMPUTE samples, the kernels among x and against y are computed once and each resample only counts."""
        x, _ = _pair(x, self.y, min_samples=2)
        if len(x) > self.PRECOMPUTE:
            return lambda index: self(x, index)
        kxx, kxy = self._k(x, x), self._k(x, self.y).mean(1)

        def score(index: torch.Tensor) -> float:
            c, n = torch.bincount(index.to(x.device), minlength=len(x)).double(), len(index)
            if n < 2:
                raise ValueError(f"index must select at least 2 samples, got {n}")
            return ((c @ kxx @ c - (c * kxx.diag()).sum()) / (n * (n - 1)) + self.yy - 2 * (c @ kxy) / n).item()
        return score

    def __call__(self, x, index: torch.Tensor | None = None) -> float:
        """MMD² of x (or of the resample x[index], index [n] of rows of x, repeats allowed) against y."""
        x, _ = _pair(x, self.y, min_samples=2)
        if index is None:
            kxx, n = self._k(x, x), len(x)
            xx, xy = (kxx.sum() - kxx.diag().sum()) / (n * (n - 1)), self._k(x, self.y).mean()
        else:  # Σ_{a≠b} k(x_ia, x_ib) = cᵀ K c − Σ_u c_u k(x_u, x_u) over the distinct rows u with counts c
            rows, counts = torch.unique(index.to(x.device), return_counts=True)
            kxx, c, n = self._k(x[rows], x[rows]), counts.double(), len(index)
            if n < 2:
                raise ValueError(f"index must select at least 2 samples, got {n}")
            xx = (c @ kxx @ c - (c * kxx.diag()).sum()) / (n * (n - 1))
            xy = c @ self._k(x[rows], self.y).mean(1) / n
        return (xx + self.yy - 2 * xy).item()


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature matrix [N, F]."""
    f = _flat(features, "features", min_samples=2).cpu().numpy()
    return f.mean(0), np.cov(f, rowvar=False)


def _gaussian(mu, sigma, k: str) -> tuple[np.ndarray, np.ndarray]:
    """mu{k} [F] and sigma{k} [F, F] as finite float64 arrays."""
    try:
        mu, sigma = np.atleast_1d(np.asarray(mu, dtype=np.float64)), np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"mu{k} and sigma{k} must be arrays of numbers, got {describe(mu)} and "
                                f"{describe(sigma)}") from None
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise ValueError(f"mu{k} must have shape [F] and sigma{k} shape [F, F], got {mu.shape} and {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"mu{k} and sigma{k} must be finite")
    return mu, sigma


class UnreliableFrechetDistance(UserWarning):
    """A Fréchet distance whose inputs are not covariance matrices to round-off, or whose value is not to be trusted."""


def _psd_root(sigma: np.ndarray, name: str, problems: list) -> np.ndarray:
    """The symmetric square root of a covariance matrix by its eigendecomposition; eigenvalues below zero by more
    than round-off (1000 F ulps of the largest) are reported in `problems`, and every negative one is set to 0."""
    lam, vecs = np.linalg.eigh(sigma)
    tol = 1000 * len(lam) * np.finfo(np.float64).eps * max(abs(lam).max(), np.finfo(np.float64).tiny)
    if lam.min() < -tol:
        problems.append(f"{name} has an eigenvalue {lam.min():.3g} < 0 beyond round-off ({tol:.1e})")
    return (vecs * np.sqrt(np.clip(lam, 0, None))) @ vecs.T


def frechet_distance_checked(mu1, sigma1, mu2, sigma2) -> tuple[float, list[str]]:
    """frechet_distance and the list of reasons it is numerically unreliable (empty when it is sound).

    tr (Σ₁Σ₂)^½ = Σᵢ √λᵢ(Σ₁^½ Σ₂ Σ₁^½): the product is similar to a symmetric positive semi-definite matrix,
    so its root comes from symmetric eigendecompositions in float64, which stay accurate when Σ₁Σ₂ is singular
    (fewer samples than features), where scipy's sqrtm of the non-symmetric product returns complex values.
    """
    (mu1, sigma1), (mu2, sigma2) = _gaussian(mu1, sigma1, "1"), _gaussian(mu2, sigma2, "2")
    if len(mu1) != len(mu2):
        raise ValueError(f"the two Gaussians must have the same dimension, got mu1 of {len(mu1)} and mu2 of {len(mu2)}")
    problems = []
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        scale = max(abs(sigma).max(), np.finfo(np.float64).tiny)
        if abs(sigma - sigma.T).max() > 1e-6 * scale:
            raise ValueError(f"{name} must be a symmetric covariance matrix; it differs from its transpose by "
                             f"{abs(sigma - sigma.T).max():.3g} (of entries up to {scale:.3g})")
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    root1 = _psd_root(sigma1, "sigma1", problems)
    _psd_root(sigma2, "sigma2", problems)
    lam = np.clip(np.linalg.eigvalsh(root1 @ sigma2 @ root1), 0, None)
    tr_sqrt = np.sqrt(lam).sum()
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_sqrt)
    # Round-off: eigenvalues carry an error δ of ~100 F ulps of the largest, and √ turns δ into up to √δ where an
    # eigenvalue is near 0 (a singular Σ); the sum of those, twice, bounds the error of 2 tr(Σ₁Σ₂)^½.
    eps, scale = np.finfo(np.float64).eps, np.trace(sigma1) + np.trace(sigma2) + ((mu1 - mu2) ** 2).sum()
    delta = 100 * len(lam) * eps * max(lam.max(), np.finfo(np.float64).tiny)
    error = 2 * (np.sqrt(lam + delta) - np.sqrt(lam)).sum() + 100 * len(lam) * eps * scale
    if d < -error:
        problems.append(f"the distance came out negative ({d:.3g}) beyond its round-off ({error:.1e})")
    return max(d, 0.0), problems


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) (Dowson & Landau 1982; FID of Heusel et al. 2017), in float64.

    Warns (UnreliableFrechetDistance) when an input is not a covariance matrix to round-off."""
    d, problems = frechet_distance_checked(mu1, sigma1, mu2, sigma2)
    if problems:
        warnings.warn(f"the Fréchet distance {d:.6g} is numerically unreliable: {'; '.join(problems)}",
                      UnreliableFrechetDistance, stacklevel=2)
    return d


def frechet_distance_features(f1, f2) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets."""
    f1, f2 = _pair(f1, f2, ("f1", "f2"), min_samples=2)
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


def kid(f1, f2, subsets: int = 100, subset_size: int = 1000, generator: torch.Generator | None = None) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with k(a, b) = (aᵀb/F + 1)³, mean and std over subsets."""
    check_positive_int(subsets, "subsets")
    check_positive_int(subset_size, "subset_size", minimum=2)
    check_generator(generator, "cpu")
    f1, f2 = _pair(f1, f2, ("f1", "f2"), min_samples=2)  # kid needs at least 2 samples in each set
    g = generator or torch.Generator().manual_seed(0)
    m, dim = min(subset_size, len(f1), len(f2)), f1.shape[1]
    values = []
    for _ in range(subsets):
        a = f1[torch.randperm(len(f1), generator=g)[:m]]
        b = f2[torch.randperm(len(f2), generator=g)[:m]]
        kaa, kbb, kab = ((u @ v.T / dim + 1) ** 3 for u, v in ((a, a), (b, b), (a, b)))
        values.append(((kaa.sum() - kaa.diag().sum() + kbb.sum() - kbb.diag().sum()) / (m * (m - 1))
                       - 2 * kab.mean()).item())
    return float(np.mean(values)), float(np.std(values))


def fraction(hits) -> tuple[float, float]:
    """The fraction p of true entries of a boolean tensor of n outcomes, and its binomial standard error
    √(p(1 − p)/n) (floored at √(1e-12/n), so p = 0 or 1 still shows an uncertainty)."""
    hits = torch.as_tensor(hits).flatten()
    if hits.dtype != torch.bool or hits.numel() == 0:
        raise ValueError(f"hits must be a non-empty boolean tensor, got {describe(hits)}")
    p = hits.double().mean().item()
    return p, (max(p * (1 - p), 1e-12) / hits.numel()) ** 0.5


def _images(x, y, data_range) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Two image batches [B, C, H, W] of the same shape as float64, and a positive data range."""
    for name, v in (("x", x), ("y", y)):
        if not isinstance(v, torch.Tensor) or v.ndim != 4:
            raise ArgumentTypeError(f"{name} must be a tensor of images [B, C, H, W], got {describe(v)}")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x.double(), y.to(x.device).double(), check_real(data_range, "data_range", low=0, inclusive=(False, True))


def psnr(x, y, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, 10 log10(data_range² / MSE) in dB: a tensor [B] (inf where x = y)."""
    x, y, data_range = _images(x, y, data_range)
    mse = ((x - y) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(data_range ** 2 / mse)


def ssim(x, y, data_range: float = 1.0, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004, Eq. 13): a tensor [B], averaged over channels and over
    the valid positions of a Gaussian window (size `window`, std `sigma`), with K₁ = 0.01, K₂ = 0.03.

    The paper's window is 11 × 11; the default 7 suits 28 × 28 digits (an 11 × 11 window leaves 18 × 18 positions).
    """
    x, y, data_range = _images(x, y, data_range)
    window = check_positive_int(window, "window")
    if window > min(x.shape[-2:]):
        raise ValueError(f"window must fit in the image: got window={window} for images of "
                         f"{x.shape[-2]}x{x.shape[-1]}")
    sigma = check_real(sigma, "sigma", low=0, inclusive=(False, True))
    g = torch.exp(-0.5 * ((torch.arange(window, dtype=torch.float64, device=x.device) - (window - 1) / 2) / sigma) ** 2)
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, window, window)

    def blur(v):
        return torch.nn.functional.conv2d(v, kernel, groups=x.shape[1])

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def restoration_metrics(x, truth, observe=None, observed=None, classifier=None, labels=None,
                        data_range: float = 1.0) -> dict:
    """How well images x [B, C, H, W] restore `truth`: {name: (mean, standard error over images)} for PSNR (dB)
    and SSIM against truth; with observe and observed, consistency = mean((observe(x) − observed)²) per image
    (e.g. observe = downsample by the SR factor, observed = the low-resolution input); with a classifier
    (images → logits) and labels, the accuracy of its predictions on x."""
    per_image = {"psnr": psnr(x, truth, data_range), "ssim": ssim(x, truth, data_range)}
    if observe is not None:
        per_image["consistency"] = ((observe(x) - observed.to(x.device)) ** 2).flatten(1).mean(1).double()
    if classifier is not None:
        with torch.no_grad():
            per_image["accuracy"] = (classifier(x).argmax(1).cpu() == labels.cpu()).double()
    return {k: (v.mean().item(), (v.std() / len(v) ** 0.5).item() if len(v) > 1 else float("nan"))
            for k, v in per_image.items()}
