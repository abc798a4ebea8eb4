"""Exact tests of conditioning at sampling time (scoresde.inverse) on Gaussian data x ~ N(μ, Σ) with its exact score.

With Gaussian data and the exact score every affine sampler (ancestral, ddim, euler_maruyama, ...) and every
projection is affine in the noise it draws, so its output is Gaussian and `moments` gets its mean and covariance
exactly from one batch: sample 0 draws zeros, sample 1 + j a one at the j-th scalar of the noise sequence. The targets
are closed forms: p(x_u | x_k = y_k) = N(μ_u + Σ_uk Σ_kk⁻¹ (y_k − μ_k), Σ_uu − Σ_uk Σ_kk⁻¹ Σ_ku), and for an
observation a = Aᵀx of orthonormal columns A the Gaussian conditional given Aᵀx = Aᵀy.
"""
from __future__ import annotations

import math

import pytest
import torch

import scoresde
from scoresde import inverse
from scoresde._utils import SampleSeeds
from scoresde.resize import low_pass
from scoresde.sampling import get_sampler

from problems import GaussianMixture, isotropic_ddpm_score
from tolerance import ulps

MU = torch.tensor([0.5, -0.3, 0.2], dtype=torch.float64)
L = torch.tensor([[1.0, 0, 0], [0.9, 0.45, 0], [-0.7, 0.3, 0.5]], dtype=torch.float64)
SIGMA = L @ L.T  # correlations 0.89 and −0.75 with coordinate 0
DATA = GaussianMixture([1.0], MU[None], SIGMA[None])
KNOWN = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)  # coordinate 0 observed
Y = torch.tensor([1.5, 0.0, 0.0], dtype=torch.float64)  # its value, 1 std above the mean
SDES = {"vp": scoresde.VPSDE, "subvp": scoresde.subVPSDE, "ve": scoresde.VESDE}
AFFINE = [("ancestral", {}), ("ddim", {}), ("ddim", {"eta": 1.0}), ("euler_maruyama", {}), ("reverse_diffusion", {}),
          ("edm", {"S_churn": 10.0}), ("dpm_solver", {"order": 1}), ("ode", {"method": "heun"})]


class Probe(SampleSeeds):
    """Noise probing an affine sampler: sample 0 draws zeros, sample 1 + j draws 1 at the j-th scalar drawn."""

    def __init__(self, batch: int, device):
        self.device, self.batch, self.drawn = torch.device(device), batch, 0

    def __len__(self):
        return self.batch

    def randn(self, shape, device, dtype):
        z = torch.zeros(shape, device=device, dtype=dtype).reshape(shape[0], -1)
        cols = torch.arange(z.shape[1], device=device)
        rows = 1 + self.drawn + cols
        keep = rows < shape[0]
        z[rows[keep], cols[keep]] = 1
        self.drawn += z.shape[1]
        return z.reshape(shape)


def moments(run, y, device, cov=True):
    """Exact mean [d] and covariance [d, d] (also along the trajectory, if returned) of run(y_batch, generator) for
    an affine sampler; cov=False: the mean only (one zero-noise path). run(y, generator) -> (x, nfe[, trajectory])."""
    batch = 1
    if cov:
        count = Probe(1, device)
        run(y[None].to(device), count)
        batch = 1 + count.drawn
    out = run(y[None].expand(batch, *y.shape).to(device), Probe(batch, device))

    def stats(x):
        x = x.flatten(1).cpu()
        J = x[1:] - x[0]
        return x[0], J.T @ J

    return [stats(v) for v in out[:1]] + ([[stats(v) for v in out[2]]] if len(out) > 2 else [])


def bias(run, A, device):
    """|E x − E[x | Aᵀx = AᵀY]|, exact."""
    (m, _), = moments(run, Y, device, cov=False)
    return (m - conditional(A, Y)[0]).norm().item()


def gaussian_w2(m1, C1, m2, C2):
    """W2 between N(m1, C1) and N(m2, C2) (C2 may be singular)."""
    r = sqrtm(C2)
    cross = sqrtm(r @ C1 @ r)
    return math.sqrt(max(((m1 - m2) ** 2).sum() + torch.trace(C1 + C2 - 2 * cross), 0.0))


def sqrtm(C):
    lam, Q = torch.linalg.eigh((C + C.T) / 2)
    return (Q * lam.clamp(min=0).sqrt()) @ Q.T


def conditional(A, y):
    """N(x | Aᵀx = Aᵀy) for x ~ N(μ, Σ), A with orthonormal columns [d, k]."""
    gain = SIGMA @ A @ torch.linalg.inv(A.T @ SIGMA @ A)
    return MU + gain @ (A.T @ (y - MU)), SIGMA - gain @ A.T @ SIGMA


def inpaint_run(sde, sampler, resample=1, jump=1):
    score = DATA.score_fn(sde)
    return lambda y, g: inverse.inpaint(score, sde, y, KNOWN.to(y.device), sampler, resample, jump, generator=g)


def test_replacement_is_biased_and_repaint_resampling_removes_it(device):
    """Replacement inpainting (Song et al. 2021) samples the wrong conditional for a correlated Σ: its mean is off
    (exact, one zero-noise path); RePaint's resampling removes this bias as r grows. The covariance is printed
    (W2), and its error does not vanish with r at a fixed number of steps."""
    sde, A = scoresde.VPSDE(), KNOWN[:, None]
    biases = {r: bias(inpaint_run(sde, get_sampler("ancestral", steps=25, progress=False), r), A, device)
              for r in (1, 2, 4, 8)}
    (m, C), = moments(inpaint_run(sde, get_sampler("ancestral", steps=25, progress=False)), Y, device)
    print(f"replacement: mean {[round(v, 4) for v in m.tolist()]}, W2 to the exact conditional "
          f"{gaussian_w2(m, C, *conditional(A, Y)):.4f}")
    print("exact conditional mean", conditional(A, Y)[0].tolist(), "\nbias |E x_u - E[x_u | x_k]| by r:", biases)
    assert biases[1] > 0.3  # replacement's bias, with 25 steps; it stays with more steps
    assert bias(inpaint_run(sde, get_sampler("ancestral", steps=100, progress=False)), A, device) > 0.3
    assert biases[1] > biases[2] > biases[4] > biases[8]
    assert biases[8] < 0.15 * biases[1]


@pytest.mark.parametrize("sde_name", ["subvp", "ve"])
def test_repaint_reduces_the_bias_on_every_sde(device, sde_name):
    sde = SDES[sde_name]()
    biases = [bias(inpaint_run(sde, get_sampler("euler_maruyama", steps=25, progress=False), r), KNOWN[:, None],
                   device) for r in (1, 4)]
    print(sde_name, "bias at r = 1, 4:", biases)
    assert biases[0] > 0.2 and biases[1] < 0.5 * biases[0]


@pytest.mark.parametrize("sde_name, resample, jump", [("vp", 1, 1), ("vp", 3, 1), ("subvp", 3, 4), ("ve", 2, 3)])
def test_known_part_follows_the_forward_marginal_at_every_move(device, sde_name, resample, jump):
    """After every move, also RePaint's jumps, the known coordinate is exactly N(α_t y, σ_t²), and the output
    carries y itself: catches a wrong noise scale or time in the projection and in the jump kernel."""
    sde = SDES[sde_name]()
    times = []
    sampler = get_sampler("ancestral", steps=12, progress=False, return_trajectory=True,
                          callback=lambda x, t, k: times.append(float(t)))
    (m, C), traj = moments(inpaint_run(sde, sampler, resample, jump), Y, device)
    times = torch.tensor(times[len(times) // 2:], dtype=torch.float64)  # the probe run's records
    alpha, sigma = sde.marginal_coeffs(times)
    mean_k = torch.stack([mt[0] for mt, _ in traj[1:-1]])  # states after each move, the Tweedie output left out
    var_k = torch.stack([Ct[0, 0] for _, Ct in traj[1:-1]])
    assert len(times) == len(mean_k)
    torch.testing.assert_close(mean_k, alpha * Y[0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(var_k, sigma**2, rtol=1e-9, atol=1e-12)
    assert m[0] == Y[0] and C[0].abs().max() == 0  # the known pixel exactly, with no variance


@pytest.mark.parametrize("name, options", AFFINE + [("pc", {"norm": "sample"})])
@pytest.mark.parametrize("steps", [2, 3, 8])
def test_inpainting_keeps_the_known_pixels_exactly(device, name, options, steps):
    sde = scoresde.VPSDE()
    y = torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(device)
    mask = (torch.rand(5, 3, 4, generator=torch.Generator().manual_seed(1)) < 0.5).to(device)
    score = lambda x, t: DATA.score_fn(sde)(x[:, :, 0], t)[..., None].expand_as(x).clone()  # any shape works
    g = torch.Generator(device).manual_seed(0)
    x, nfe = inverse.inpaint(score, sde, y, mask, get_sampler(name, steps=steps, progress=False, **options),
                             resample=2, generator=g)
    assert x.device.type == device.type and x.dtype == torch.float64
    assert torch.equal(x[mask], y[mask]) and torch.isfinite(x).all()
    assert not torch.equal(x[~mask], y[~mask])


def test_inpainting_with_a_discrete_time_score_and_float32(device):
    sde = scoresde.VPSDE()
    y = torch.randn(4, 6, generator=torch.Generator().manual_seed(0)).to(device)
    mask = torch.tensor([1, 1, 0, 0, 1, 0], device=device)
    g = torch.Generator(device).manual_seed(0)
    x, nfe = inverse.inpaint(isotropic_ddpm_score(sde, 0.5), sde, y, mask, get_sampler("ddim", steps=10, progress=False),
                             resample=2, jump=3, generator=g)
    assert x.dtype == torch.float32 and torch.equal(x[:, mask.bool()], y[:, mask.bool()])
    assert nfe == 9 + 3 * 3 + 1  # 9 moves on 10 grid times, 3 more after each jump back from positions 9, 6, 3; Tweedie


def test_colorize_identity_basis_equals_inpainting_and_a_rotated_basis_conditions_exactly(device):
    """Colourisation with M = I is inpainting, path-wise; with a random orthogonal M the observation Mᵀx = Mᵀy
    holds exactly, and RePaint drives the law to the exact Gaussian conditional as for inpainting."""
    sde, sampler = scoresde.VPSDE(), get_sampler("ancestral", steps=20, progress=False)
    y = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).to(device)
    score = DATA.score_fn(sde)
    a = inverse.colorize(score, sde, y, sampler, mask=KNOWN.to(device), basis=None,
                         generator=torch.Generator(device).manual_seed(0))[0]
    b = inverse.inpaint(score, sde, y, KNOWN.to(device), sampler, generator=torch.Generator(device).manual_seed(0))[0]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-14)

    M = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4)))[0]
    obs = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    x = inverse.colorize(score, sde, y, sampler, mask=obs.to(device), basis=M.to(device),
                         generator=torch.Generator(device).manual_seed(0))[0]
    torch.testing.assert_close((x @ M.to(device))[:, :2], (y @ M.to(device))[:, :2], rtol=0, atol=1e-12)
    run = lambda r: lambda yy, g: inverse.colorize(score, sde, yy, sampler, mask=obs.to(device), basis=M.to(device),
                                                   resample=r, generator=g)
    biases = [bias(run(r), M[:, :2], device) for r in (1, 2, 6)]
    print("colorize bias at r = 1, 2, 6:", biases)  # slower than for inpainting: mixing depends on MᵀΣM
    assert biases[0] > 0.5 and biases[0] > biases[1] > biases[2] and biases[2] < 0.85 * biases[0]


def test_colorize_everything_observed_returns_y_and_nothing_observed_is_the_plain_sampler(device):
    sde = scoresde.VPSDE()
    y = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(device)
    data = GaussianMixture([1.0], torch.zeros(1, 48, dtype=torch.float64), torch.eye(48, dtype=torch.float64)[None] * 0.3)
    score, sampler = data.score_fn(sde), get_sampler("euler_maruyama", steps=8, progress=False)
    for basis in (None, inverse.COLOR_DECOUPLING.to(device)):  # P = I exactly, or M Mᵀ = I up to rounding
        x, _ = inverse.colorize(score, sde, y, sampler, mask=torch.ones(3, 1, 1, device=device), basis=basis,
                                generator=torch.Generator(device).manual_seed(0))
        # M Mᵀ y with 3×3 products of |y|-sized numbers: a few roundings per entry, so 64 ulps of max |y|
        torch.testing.assert_close(x, y, rtol=0, atol=0 if basis is None else ulps(64, y))
    x, nfe = inverse.colorize(score, sde, y, sampler, mask=torch.zeros(3, 1, 1, device=device),
                              generator=torch.Generator(device).manual_seed(0))
    plain, nfe_plain = sampler(score, sde, y.shape, generator=torch.Generator(device).manual_seed(0), device=device,
                               dtype=torch.float64)
    assert torch.equal(x, plain) and nfe == nfe_plain
    grey, _ = inverse.colorize(score, sde, y, sampler, generator=torch.Generator(device).manual_seed(0))
    torch.testing.assert_close(grey.mean(1), y.mean(1), rtol=0, atol=1e-12)  # the default: the grey level of y


IMAGE = GaussianMixture([1.0], torch.tensor([[0.3, -0.2, 0.1, 0.4]], dtype=torch.float64),
                        (SIGMA.new_tensor([[1.0, 0.6, 0.5, 0.3], [0.6, 1.0, 0.4, 0.5], [0.5, 0.4, 1.0, 0.6],
                                           [0.3, 0.5, 0.6, 1.0]]) * 0.8)[None])  # 2 × 2 images, correlated pixels
REFERENCE = torch.tensor([[[1.2, 0.4], [0.9, -0.3]]], dtype=torch.float64)  # [1, 2, 2]


def test_ilvr_without_filtering_returns_the_reference_up_to_the_last_noise_level(device):
    """N = 1: φ_N = I, so x_eps = α y + σ z and x̂_0 = E[x_0 | x_eps]: |x̂_0 − y| ≤ 6 σ_eps per pixel."""
    sde = scoresde.VPSDE()
    y = REFERENCE.expand(200, 1, 2, 2).to(device)
    x, _ = inverse.ilvr(IMAGE.score_fn(sde), sde, y, 1, get_sampler("ancestral", steps=20, progress=False),
                        generator=torch.Generator(device).manual_seed(0))
    sigma_eps = sde.marginal_coeffs(torch.tensor(sde.sampling_eps))[1].item()
    print(f"ILVR N=1: max |x - y| = {(x - y).abs().max().item():.4f}, sigma_eps = {sigma_eps:.4f}")
    assert (x - y).abs().max() < 6 * sigma_eps


def test_ilvr_low_frequencies_approach_the_reference_as_steps_grow(device):
    """φ_2(x̂_0) − φ_2(y) comes from the last conditioned noise level; on DDPM's grid (eps = T/steps) its exact
    RMS falls as the steps grow, while the high frequencies stay free (their variance does not vanish)."""
    sde = scoresde.VPSDE()
    score, rms = IMAGE.score_fn(sde), []
    P = low_pass(torch.eye(4, dtype=torch.float64).reshape(4, 1, 2, 2), 2).reshape(4, 4)  # φ_2 as a matrix
    for steps in (5, 20, 80):
        sampler = get_sampler("ancestral", steps=steps, eps=sde.T / steps, progress=False)
        (m, C), = moments(lambda y, g: inverse.ilvr(score, sde, y, 2, sampler, generator=g), REFERENCE, device)
        d = P @ (m - REFERENCE.flatten())
        rms.append(math.sqrt(d @ d + torch.trace(P @ C @ P)))
        free = torch.trace((torch.eye(4, dtype=torch.float64) - P) @ C).item()
        print(f"ILVR N=2, {steps} steps: RMS |phi(x) - phi(y)| = {rms[-1]:.4f}, free variance {free:.3f}")
        assert free > 0.2  # the exact conditional's is 0.38
    assert rms[0] > 1.5 * rms[1] > 2.25 * rms[2]


def test_ilvr_range_leaves_late_steps_unconditioned(device):
    """Projecting only at t ≥ 0.5 leaves the law of φ(x̂_0) near, but not at, φ(y)."""
    sde = scoresde.VPSDE()
    y = REFERENCE.expand(300, 1, 2, 2).to(device)
    sampler = get_sampler("ddim", steps=20, progress=False)
    full, part = (inverse.ilvr(IMAGE.score_fn(sde), sde, y, 2, sampler, t_range=r,
                               generator=torch.Generator(device).manual_seed(0))[0] for r in (None, (0.5, 1.0)))
    err = [(low_pass(v, 2) - low_pass(y, 2)).pow(2).mean().sqrt().item() for v in (full, part)]
    print("ILVR RMS low-pass error, full range vs t >= 0.5:", err)
    assert err[0] < 0.05 < err[1]


@pytest.mark.parametrize("name, options", [("dpm_solver", {}), ("unipc", {}), ("deis", {}), ("ode", {}),
                                           ("torchsde", {}), ("dpm_solver_sde", {})])
def test_samplers_that_do_not_step_from_x_alone_are_refused(name, options):
    sde = scoresde.VPSDE()
    with pytest.raises(ValueError, match="ancestral.*pc.*ddim.*edm"):
        inverse.inpaint(DATA.score_fn(sde), sde, Y[None], KNOWN, get_sampler(name, steps=5, **options))


def test_bad_inputs_fail_clearly():
    sde, score, s = scoresde.VPSDE(), DATA.score_fn(scoresde.VPSDE()), get_sampler("ddim", steps=5, progress=False)
    y = Y[None].expand(2, 3)
    with pytest.raises(ValueError, match="broadcast to y's shape"):
        inverse.inpaint(score, sde, y, torch.ones(4), s)
    with pytest.raises(ValueError, match="0/1"):
        inverse.inpaint(score, sde, y, torch.full((3,), 0.5), s)
    with pytest.raises(TypeError, match="mask must be a tensor"):
        inverse.inpaint(score, sde, y, [1, 0, 0], s)
    with pytest.raises(ValueError, match="y must be"):
        inverse.inpaint(score, sde, y * math.nan, KNOWN, s)
    with pytest.raises(ValueError, match="resample"):
        inverse.inpaint(score, sde, y, KNOWN, s, resample=0)
    with pytest.raises(ValueError, match="jump must be at most"):
        inverse.inpaint(score, sde, y, KNOWN, s, resample=2, jump=5)
    with pytest.raises(ValueError, match="orthogonal"):
        inverse.colorize(score, sde, y, s, mask=KNOWN, basis=torch.ones(3, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="sampler must be"):
        inverse.inpaint(score, sde, y, KNOWN, 3)
    img = REFERENCE[None].expand(2, 1, 2, 2)
    with pytest.raises(ValueError, match="multiples of factor"):
        inverse.ilvr(score, sde, img, 3, s)
    for bad in [(0.5, 0.2), (0.1, 2.0), (-1, 0.5)]:
        with pytest.raises(ValueError, match="t_range"):
            inverse.ilvr(IMAGE.score_fn(sde), sde, img, 2, s, t_range=bad)
    with pytest.raises(TypeError, match="t_range must be a pair"):
        inverse.ilvr(IMAGE.score_fn(sde), sde, img, 2, s, t_range=0.5)


def test_repaint_schedule_visits_each_jump_interval_resample_times():
    moves = inverse.repaint_schedule(6, 3, 2)
    downs = [p for p, m in moves if m > 0]
    assert sum(m for _, m in moves) == 6 and all(m in (1, -2) for _, m in moves)
    assert downs.count(5) == 3 and downs.count(0) == 3 and len(downs) == 6 + 2 * 2 * 3  # 3 jump points (6, 4, 2)
    assert inverse.repaint_schedule(4, 1, 1) == [(0, 1), (1, 1), (2, 1), (3, 1)]
