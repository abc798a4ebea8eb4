"""Sample-quality metrics on sets small enough to compute by hand: each test asserts a number that could be wrong."""
import math
import warnings

import numpy as np
import pytest
import torch

from scoresde import metrics
from tolerance import ulps

F64 = torch.float64


def test_sliced_wasserstein_sorts_each_projection():
    """In 1-D every direction is ±1, so SW_p is W_p between the sorted sets: {0, 1, 2} against {0.5, 1.5, 5}
    gives (0.5 + 0.5 + 3)/3 for p = 1 and √((0.25 + 0.25 + 9)/3) for p = 2, whatever the order of the points
    (unsorted, paired by position, it would be (1.5 + 5 + 0.5)/3)."""
    x = torch.tensor([[2.0], [0.0], [1.0]], dtype=F64)
    y = torch.tensor([[0.5], [5.0], [1.5]], dtype=F64)
    assert metrics.sliced_wasserstein(x, y) == pytest.approx(4 / 3, rel=1e-12)
    assert metrics.sliced_wasserstein(x, y, p=2) == pytest.approx(math.sqrt(9.5 / 3), rel=1e-12)
    assert metrics.sliced_wasserstein(y, x, n_projections=7, generator=torch.Generator().manual_seed(3)) == pytest.approx(4 / 3, rel=1e-12)


def test_sliced_wasserstein_averages_over_unit_directions():
    """{(0, 0), (2, 0)} against {(0, 0), (0, 2)}: along a unit θ the projections are {0, c} and {0, s} with
    c = 2θ₁, s = 2θ₂, so W₁ = (|min(0, c) − min(0, s)| + |max(0, c) − max(0, s)|)/2, averaged over the same 256
    seeded unit directions."""
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=F64)
    y = torch.tensor([[0.0, 0.0], [0.0, 2.0]], dtype=F64)
    theta = torch.randn(2, 256, generator=torch.Generator().manual_seed(0), dtype=F64)
    theta = theta / theta.norm(dim=0)
    c, s = 2 * theta[0], 2 * theta[1]  # projections of (2, 0) and (0, 2)
    w1 = ((torch.minimum(c, torch.zeros(1, dtype=F64)) - torch.minimum(s, torch.zeros(1, dtype=F64))).abs()
          + (torch.maximum(c, torch.zeros(1, dtype=F64)) - torch.maximum(s, torch.zeros(1, dtype=F64))).abs()) / 2
    assert metrics.sliced_wasserstein(x, y) == pytest.approx(w1.mean().item(), rel=1e-12)
    assert metrics.sliced_wasserstein(x, y) > 0.3  # the sets differ in every direction but ±45°


def test_sliced_wasserstein_of_unequal_sets_matches_quantiles():
    """{0, 1} against {0, 1/3, 2/3, 1}: the linear-interpolation quantiles of {0, 1} at 0, 1/3, 2/3, 1 are exactly
    the second set, so SW = 0; shifting it by 0.5 gives 0.5 (p = 1 and 2). Against {0, 0.5, 0.6, 1} the four
    quantile gaps are 0, 1/6, 1/15, 0 (matching only the two end quantiles would give 0)."""
    x = torch.tensor([[1.0], [0.0]], dtype=F64)
    y = torch.tensor([[0.0], [2 / 3], [1 / 3], [1.0]], dtype=F64)
    # the quantiles 1/3 and 2/3 are interpolated, so they are exact to a few ulps of 1 (16 allowed)
    assert metrics.sliced_wasserstein(x, y) == pytest.approx(0.0, abs=ulps(16))
    assert metrics.sliced_wasserstein(x, y + 0.5) == pytest.approx(0.5, rel=1e-12)
    assert metrics.sliced_wasserstein(y + 0.5, x, p=2) == pytest.approx(0.5, rel=1e-12)
    y = torch.tensor([[0.6], [0.0], [1.0], [0.5]], dtype=F64)
    assert metrics.sliced_wasserstein(x, y) == pytest.approx((1 / 6 + 1 / 15) / 4, rel=1e-12)
    assert metrics.sliced_wasserstein(y, x, p=2) == pytest.approx(math.sqrt((1 / 36 + 1 / 225) / 4), rel=1e-12)
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        metrics.sliced_wasserstein(x, y, p=3)


def test_mmd_by_hand():
    """x = {0, 1}, y = {0, 2}, k = Σ_h exp(−d²/2h²): unbiased MMD² = k̄(x, x) + k̄(y, y) − 2 k̄(x, y), diagonals left out."""
    x = torch.tensor([[0.0], [1.0]], dtype=F64)
    y = torch.tensor([[0.0], [2.0]], dtype=F64)
    k = lambda d, hs: sum(math.exp(-d**2 / (2 * h**2)) for h in hs)
    for hs in ((1.0,), (0.5, 2.0)):
        kxx, kyy = k(1, hs), k(2, hs)
        kxy = (k(0, hs) + k(2, hs) + k(1, hs) + k(1, hs)) / 4
        assert metrics.mmd(x, y, bandwidths=hs) == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-12)
    hs = (0.1, 0.5, 1.0, 2.0, 5.0)  # the default bandwidths; x against itself: 2 k(1) − (2 k(0) + 2 k(1))/2
    assert metrics.mmd(x, x) == pytest.approx(k(1, hs) - k(0, hs), rel=1e-12)


def test_kid_by_hand():
    """f1 = {0, 1}, f2 = {1, 2} (F = 1), k(a, b) = (ab + 1)³: k(0,1) = 1, k(1,2) = 27, cross terms 1, 1, 8, 27, so
    KID = (2·1 + 2·27)/2 − 2·37/4 = 9.5 with zero spread over subsets (each subset is the whole set)."""
    f1, f2 = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]])
    mean, std = metrics.kid(f1, f2, subsets=5, subset_size=10)
    assert mean == pytest.approx(9.5, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    # F = 2 divides the inner product: k(a, b) = (aᵀb/2 + 1)³. Within each set aᵀb = 0; across, 0, 0, 4, 0.
    g1, g2 = torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([[2.0, 0.0], [0.0, 4.0]])
    assert metrics.kid(g1, g2, subsets=3)[0] == pytest.approx(1 + 1 - 2 * (1 + 1 + 27 + 1) / 4, rel=1e-12)
    with pytest.raises(ValueError, match="f1 must hold at least 2 real-valued samples"):
        metrics.kid(f1[:1], f2)


def test_kid_subsets_are_drawn_without_replacement():
    """Subsets of 2 out of 3 points: every subset value is one of the three pairwise KIDs, and the spread is not 0."""
    f1 = torch.tensor([[0.0], [1.0], [3.0]], dtype=F64)
    f2 = torch.tensor([[1.0], [2.0]], dtype=F64)
    k = lambda a, b: (a * b + 1) ** 3
    kbb, kab_of = k(1, 2), lambda p: sum(k(a, b) for a in p for b in (1, 2)) / 4
    values = {round(k(*p) + kbb - 2 * kab_of(p), 9) for p in ((0, 1), (0, 3), (1, 3))}
    mean, std = metrics.kid(f1, f2, subsets=50, subset_size=2, generator=torch.Generator().manual_seed(0))
    assert std > 1.0 and min(values) <= mean <= max(values)
    # The mean over subsets is a weighted mean of the three values: count them by replaying the permutations.
    g, counts = torch.Generator().manual_seed(0), []
    for _ in range(50):
        a = tuple(sorted(f1[torch.randperm(3, generator=g)[:2]].flatten().tolist()))
        torch.randperm(2, generator=g)
        counts.append(round(k(*a) + kbb - 2 * kab_of(a), 9))
    assert set(counts) <= values
    assert mean == pytest.approx(np.mean(counts), rel=1e-9) and std == pytest.approx(np.std(counts), rel=1e-9)


def test_gaussian_stats_and_frechet_distance_of_features():
    """Mean and unbiased covariance of three feature vectors, and the Fréchet distance of two such sets in closed form."""
    f = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]], dtype=F64)
    mu, cov = metrics.gaussian_stats(f)
    np.testing.assert_allclose(mu, [2 / 3, 2 / 3], rtol=ulps(4))  # a sum of 3 and a division
    np.testing.assert_allclose(cov, [[4 / 3, -2 / 3], [-2 / 3, 4 / 3]], rtol=ulps(16))  # centring, 3 products, a sum
    # Shifting and scaling by 3: Σ₂ = 9 Σ₁ commutes with Σ₁, so d = ‖Δμ‖² + tr(Σ₁ + 9Σ₁ − 2·3Σ₁) = ‖Δμ‖² + 4 tr Σ₁.
    g = 3 * f + torch.tensor([1.0, -1.0], dtype=F64)
    expected = ((3 * mu + [1.0, -1.0] - mu) ** 2).sum() + 4 * np.trace(cov)
    assert metrics.frechet_distance_features(f, g) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_non_commuting_covariances():
    """Σ₁ = diag(1, 4), Σ₂ = R diag(9, 1) Rᵀ (45° rotation): tr (Σ₁Σ₂)^½ from the eigenvalues of Σ₁^½ Σ₂ Σ₁^½."""
    R = np.array([[1.0, -1.0], [1.0, 1.0]]) / math.sqrt(2)
    s1, s2 = np.diag([1.0, 4.0]), R @ np.diag([9.0, 1.0]) @ R.T
    root1 = np.diag([1.0, 2.0])
    tr_sqrt = np.sqrt(np.linalg.eigvalsh(root1 @ s2 @ root1)).sum()
    expected = 1.0 + 4.0 + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert metrics.frechet_distance([1.0, 0.0], s1, [0.0, 2.0], s2) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_singular_covariances():
    """Rank-one covariances along different axes: Σ₁Σ₂ = 0 and d = ‖Δμ‖² + tr Σ₁ + tr Σ₂, exactly, with no
    regularisation (the eigendecompositions are of diagonal matrices here)."""
    s1, s2 = np.diag([2.0, 0.0]), np.diag([0.0, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a singular covariance is sound input: no warning
        assert metrics.frechet_distance(np.zeros(2), s1, np.ones(2), s2) == 2.0 + 5.0


def test_frechet_distance_of_two_gaussians_in_closed_form():
    """For 2 × 2 matrices, tr M^½ = √(tr M + 2√det M) when M has non-negative eigenvalues (M = Σ₁Σ₂). Random
    non-commuting covariances in float64, and rank-deficient ones (fewer samples than features) of dimension 50
    against scipy's sqrtm of the symmetrised product: both to a few hundred ulps of the traces."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
        s1, s2, mu1, mu2 = a @ a.T, b @ b.T, rng.normal(size=2), rng.normal(size=2)
        m = s1 @ s2
        expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * math.sqrt(
            np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
        scale = np.trace(s1) + np.trace(s2)
        assert abs(metrics.frechet_distance(mu1, s1, mu2, s2) - expected) < ulps(400) * scale
    f, g = rng.normal(size=(20, 50)), rng.normal(size=(30, 50)) * 1.5  # Σ of rank 19 and 29 in 50 dimensions
    (m1, c1), (m2, c2) = metrics.gaussian_stats(f), metrics.gaussian_stats(g)
    from scipy import linalg
    r1 = linalg.sqrtm(c1)
    reference = ((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(linalg.sqrtm(r1 @ c2 @ r1)).real
    assert metrics.frechet_distance(m1, c1, m2, c2) == pytest.approx(reference, rel=1e-8)  # sqrtm's own accuracy


def test_frechet_distance_says_when_it_is_unreliable():
    """A matrix with a clearly negative eigenvalue is not a covariance: the distance warns and says which; an
    asymmetric one is refused."""
    bad = np.diag([1.0, -0.5])
    with pytest.warns(metrics.UnreliableFrechetDistance, match="sigma2 has an eigenvalue -0.5"):
        metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), bad)
    with pytest.raises(ValueError, match="sigma1 must be a symmetric covariance matrix"):
        metrics.frechet_distance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2))
    d, problems = metrics.frechet_distance_checked(np.zeros(2), np.eye(2), np.ones(2), np.eye(2))
    assert d == 2.0 and problems == []


def test_the_references_score_resamples_exactly_like_the_functions():
    """SlicedReference and MMDReference (compare's bootstrap) give sliced_wasserstein and mmd of x[index] with the
    reference's terms computed once: through the counts of distinct rows, and through the precomputed kernels."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 2, generator=g, dtype=F64), torch.randn(200, 2, generator=g, dtype=F64) + 0.3
    index = torch.randint(300, (250,), generator=g)
    assert metrics.SlicedReference(y)(x[index]) == metrics.sliced_wasserstein(x[index], y)
    ref = metrics.MMDReference(y)
    want = metrics.mmd(x[index], y)
    # sums of 250² kernel values of at most 5 (5 bandwidths), summed in another order: 250² ulps of 5 per sum
    tol = ulps(250**2, 5)
    assert ref(x, index) == pytest.approx(want, rel=0, abs=tol)
    assert ref.resampled(x)(index) == pytest.approx(want, rel=0, abs=tol)
    assert ref(x) == pytest.approx(metrics.mmd(x, y), rel=0, abs=ulps(300**2, 5))
    assert abs(want - metrics.mmd(x[:250], y)) > 1e-3  # the resample is not the first rows
