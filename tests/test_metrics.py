import numpy as np
import pytest
import torch

from scoresde import metrics


def test_frechet_distance_between_gaussians_in_closed_form():
    # 1-D: (μ1 − μ2)² + (s1 − s2)².
    assert metrics.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(4 + 1)
    # Commuting covariances: ‖μ1 − μ2‖² + Σ (√a − √b)².
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    value = metrics.frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b))
    assert value == pytest.approx(3 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum(), rel=1e-9)


def test_frechet_distance_of_features_identical_sets_is_zero():
    f = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    assert abs(metrics.frechet_distance_features(f, f)) < 1e-6


def test_sliced_wasserstein_zero_and_shift():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 3, generator=g, dtype=torch.float64)
    assert metrics.sliced_wasserstein(x, x) == 0.0
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    # A shift by c moves every projection θᵀx by θᵀc, so SW = √(mean_θ (θᵀc)²) for the same directions.
    theta = torch.randn(3, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shifts = c @ (theta / theta.norm(dim=0))
    assert metrics.sliced_wasserstein(x, x + c, p=2) == pytest.approx((shifts**2).mean().sqrt().item(), rel=1e-9)
    assert metrics.sliced_wasserstein(x, x + c, p=1) == pytest.approx(shifts.abs().mean().item(), rel=1e-9)
    with pytest.raises(ValueError, match="same dimension"):
        metrics.sliced_wasserstein(x, x[:, :2])


def test_mmd_and_kid_separate_distributions():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g)
    assert abs(metrics.mmd(x, y)) < 0.02
    assert metrics.mmd(x, y + 2.0) > 0.5
    same, _ = metrics.kid(x, y, subsets=20, subset_size=200)
    diff, _ = metrics.kid(x, y + 2.0, subsets=20, subset_size=200)
    assert abs(same) < 0.05 and diff > 1.0


def test_fraction_is_the_binomial_proportion_and_its_standard_error():
    p, se = metrics.fraction(torch.tensor([True, False, False, False, True, False, False, False]))
    assert p == 0.25 and se == pytest.approx((0.25 * 0.75 / 8) ** 0.5, rel=1e-15)
    p, se = metrics.fraction(torch.ones(4, dtype=torch.bool))  # all hits: the floor, not 0
    assert p == 1.0 and se == pytest.approx((1e-12 / 4) ** 0.5, rel=1e-15)
    with pytest.raises(ValueError, match="hits must be a non-empty boolean tensor"):
        metrics.fraction(torch.tensor([1.0, 0.0]))
