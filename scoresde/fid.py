"""FID at scale (Heusel et al. 2017): feature statistics sharded over ranks and reduced in float64, reference
`.npz` files with `mu` and `sigma` (the format of pytorch-fid and EDM), and EDM's protocol by name.

The statistics of N features f are μ = Σf / N and Σ = Σ(f − μ)(f − μ)ᵀ / (N − 1). Each rank accumulates its
share in float64 about its own first batch's mean (so the sums do not cancel), and the ranks combine them
exactly: first the global mean from Σᵣ Nᵣ μᵣ, then Σᵣ [Cᵣ + Nᵣ (μᵣ − μ)(μᵣ − μ)ᵀ], each by one all_reduce.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import metrics
from ._utils import describe
from .distributed import Distributed


@dataclass(frozen=True)
class Protocol:
    """How many samples, in how many seed sets, make one reported FID."""
    samples: int     # per seed set
    seed_sets: int   # set k uses seeds k·samples … (k + 1)·samples − 1
    description: str


PROTOCOLS = {
    "edm": Protocol(50_000, 3, "EDM (Karras et al. 2022): 50,000 samples, three seed sets, mean ± sd (and the min, "
                               "which EDM's tables report)"),
    "fid50k": Protocol(50_000, 1, "50,000 samples, seeds 0-49999, once"),
    "fid10k": Protocol(10_000, 1, "10,000 samples, seeds 0-9999, once (quicker, biased upward)"),
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"--protocol must be one of {sorted(PROTOCOLS)}, got {name!r}")
    return PROTOCOLS[name]


class FeatureStats:
    """Mean and covariance of feature vectors, accumulated in float64 batch by batch, combined over ranks."""

    def __init__(self):
        self.n, self.shift, self.sum, self.outer = 0, None, None, None

    def update(self, features: torch.Tensor) -> None:
        f = features.detach().reshape(len(features), -1).to(torch.float64)
        if not bool(torch.isfinite(f).all()):
            raise ValueError(f"features must be finite, got a batch with {int((~torch.isfinite(f)).sum())} "
                             f"non-finite values")
        if self.shift is None:
            self.shift = f.mean(0)
            self.sum = torch.zeros_like(self.shift)
            self.outer = torch.zeros(len(self.shift), len(self.shift), dtype=torch.float64, device=f.device)
        elif f.shape[1] != len(self.shift):
            raise ValueError(f"features must keep one dimension, got {f.shape[1]} after {len(self.shift)}")
        d = f - self.shift
        self.n += len(f)
        self.sum += d.sum(0)
        self.outer += d.T @ d

    def local(self) -> tuple[int, torch.Tensor, torch.Tensor]:
        """This rank's count, mean and scatter matrix Σ(f − μᵣ)(f − μᵣ)ᵀ."""
        mean = self.sum / self.n
        return self.n, self.shift + mean, self.outer - self.n * torch.outer(mean, mean)

    def reduce(self, dist: Distributed | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """(μ [F], Σ [F, F], N) over every rank's features, in float64."""
        dist = dist or Distributed(torch.device("cpu"))
        if dist.world == 1:
            if self.n < 2:
                raise ValueError(f"FID statistics need at least 2 features, got {self.n}")
            n, mu, scatter = self.local()
            return mu.cpu().numpy(), (scatter / (n - 1)).cpu().numpy(), n
        dim = dist.all_max(0 if self.shift is None else len(self.shift))
        if self.n:
            n, mu_r, scatter_r = self.local()
        else:  # a rank with no share (more ranks than shards)
            n, mu_r, scatter_r = 0, torch.zeros(dim, dtype=torch.float64), torch.zeros(dim, dim, dtype=torch.float64)
        total, weighted = dist.all_sum(torch.tensor([float(n)], dtype=torch.float64), n * mu_r.to(torch.float64))
        total = int(total.item())
        if total < 2:
            raise ValueError(f"FID statistics need at least 2 features, got {total}")
        mu = weighted / total
        diff = mu_r.to(mu.device) - mu
        scatter, = dist.all_sum(scatter_r.to(mu.device) + n * torch.outer(diff, diff))
        return mu.cpu().numpy(), (scatter / (total - 1)).cpu().numpy(), total


def save_reference(path, mu: np.ndarray, sigma: np.ndarray, n: int, features: str) -> Path:
    """A reference `.npz` with mu and sigma (float64), readable by pytorch-fid and EDM, plus n and the feature name."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"the reference file must end in .npz, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64), n=np.int64(n),
             features=np.str_(features))
    return path


def load_reference(path, dim: int | None = None) -> dict:
    """{mu, sigma, n (or None), features (or None)} from a reference `.npz` of pytorch-fid, EDM or scoresde."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference statistics {path} do not exist; write them with scoresde fid-ref, or use "
                                f"a published .npz with mu and sigma (e.g. EDM's cifar10-32x32.npz)")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"reference {path} is not a readable .npz file: {e}") from None
    missing = [k for k in ("mu", "sigma") if k not in data]
    if missing:
        raise ValueError(f"reference {path} has no {' or '.join(missing)} (it holds {sorted(data) or 'nothing'}); a "
                         f"reference .npz needs mu [F] and sigma [F, F]")
    mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise ValueError(f"reference {path}: mu must be [F] and sigma [F, F], got {mu.shape} and {sigma.shape}")
    if dim is not None and len(mu) != dim:
        raise ValueError(f"reference {path} has {len(mu)}-dimensional statistics, but the features are {dim}-"
                         f"dimensional (2048 for Inception-v3's pool features): it was made with other features")
    return {"mu": mu, "sigma": sigma, "n": int(data["n"]) if "n" in data else None,
            "features": str(data["features"]) if "features" in data else None}


def image_batches(source, batch_size: int, dist: Distributed):
    """This rank's share of 8-bit images [B, C, H, W] from a shard folder (scoresde sample --seeds), an `.npz` of
    uint8 images [N, H, W, C] (key images or arr_0, as ADM and EDM write), or a uint8 tensor [N, C, H, W]."""
    if isinstance(source, torch.Tensor):
        if source.dtype != torch.uint8 or source.ndim != 4:
            raise ValueError(f"images must be a uint8 tensor [N, C, H, W], got {describe(source)}")
        starts = range(dist.rank * batch_size, len(source), dist.world * batch_size)
        for i in starts:
            yield source[i:i + batch_size]
        return
    source = Path(source)
    if source.is_dir():
        from .shards import shard_files
        for k, path in enumerate(shard_files(source)):
            if k % dist.world == dist.rank:
                with np.load(path) as f:
                    if "images" not in f.files:
                        raise ValueError(f"{path} holds samples, not images: FID is for image runs")
                    images = torch.from_numpy(f["images"]).permute(0, 3, 1, 2)
                for i in range(0, len(images), batch_size):
                    yield images[i:i + batch_size]
        return
    if source.suffix != ".npz" or not source.is_file():
        raise FileNotFoundError(f"samples {source} must be a folder that scoresde sample --seeds wrote, or an .npz of "
                                f"uint8 images [N, H, W, C]")
    with np.load(source, allow_pickle=False) as f:
        key = next((k for k in ("images", "arr_0") if k in f.files), None)
        if key is None or f[key].dtype != np.uint8 or f[key].ndim != 4:
            raise ValueError(f"{source} must hold uint8 images [N, H, W, C] under 'images' or 'arr_0', got "
                             f"{ {k: (f[k].dtype.name, f[k].shape) for k in f.files} }")
        images = torch.from_numpy(f[key]).permute(0, 3, 1, 2)
    yield from image_batches(images.contiguous(), batch_size, dist)


def statistics(source, features, batch_size: int = 250, dist: Distributed | None = None, log=None):
    """(μ, Σ, N) of features(images) over every image of `source` (see image_batches), sharded over the ranks."""
    dist = dist or Distributed(torch.device("cpu"))
    stats = FeatureStats()
    for u in image_batches(source, batch_size, dist):
        stats.update(features(u))
    return stats.reduce(dist)


def fid(stats: tuple, reference: dict) -> tuple[float, list[str]]:
    """The Fréchet distance of sample statistics (μ, Σ, N) to a reference, and what makes it unreliable."""
    mu, sigma, n = stats
    value, problems = metrics.frechet_distance_checked(mu, sigma, reference["mu"], reference["sigma"])
    if n <= len(mu):
        problems.append(f"{n} samples in {len(mu)} dimensions leave Σ singular; the FID is biased upward (EDM "
                        f"uses 50,000)")
    return value, problems


def summarize(values: list[float]) -> dict:
    """Mean, sample standard deviation (ddof 1; 0 for one value) and min of FIDs over seed sets."""
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"mean": mean, "sd": sd, "min": min(values), "values": values}
