"""Held-out bits/dim of 8-bit images: uniform dequantisation plus its offset, against closed forms for Gaussian data.

A Gaussian N(m, s² I) in the model's [−1, 1] pixel space has the exact score under the VP-SDE, and its density at
t = eps is N(α m, α² s² + σ²) in closed form. The 8-bit images are that Gaussian discretised into the 256 bins
[−1 + 2u/256, −1 + 2(u + 1)/256).
"""
import math

import pytest
import torch

import scoresde
from scoresde.analytic import GaussianMixture
from scoresde.cli import main
from scoresde.config import default_config
from scoresde.data import ImageData, stream_generator
from scoresde.likelihood import dequantize
from scoresde.run import DEQUANTIZE_STREAM, Run

F64 = torch.float64
SHAPE = (1, 2, 2)
D = 4


class ExactScore(torch.nn.Module):
    """The exact score of the Gaussian data, as a network (parameterization 'score')."""

    def __init__(self, data, sde):
        super().__init__()
        self.score = data.score_fn(sde)

    def forward(self, x, t):
        return self.score(x.double(), t.double()).to(x.dtype)


def gaussian_run(m, s, n=256, seed=0):
    """A Run over n held-out 8-bit images of the Gaussian N(m, s² I) discretised, with its exact score."""
    sde = scoresde.VPSDE()
    data = GaussianMixture([1.0], torch.full((1, D), m, dtype=F64), torch.eye(D, dtype=F64)[None] * s**2)
    x = m + s * torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=F64)
    u = ((x + 1) * 128).floor().clamp(0, 255).to(torch.uint8)
    config = default_config()
    config.model.parameterization, config.eval.batch_size, config.eval.n_bpd = "score", 128, n
    images = ImageData(u, u, centered=True)
    run = Run(config, ExactScore(data, sde), shape=SHAPE, is_image=True, device="cpu", data=images)
    return run, data, sde, u


def log2_density(data, sde, y):
    """log₂ p_eps(y) [B] in closed form."""
    t = torch.full((len(y),), sde.sampling_eps, dtype=F64)
    return data.log_prob(sde, y.double().flatten(1), t) / math.log(2)


def test_dequantized_bpd_is_the_closed_form_of_the_dequantized_points_plus_7():
    """Each sample's reported bits/dim is −log₂ p_eps(y)/D + 7 at the very dequantised point y (the same noise
    replayed). The N(0, I) prior differs from p_T by a mean of α_T m = 7e-4 (negligible); what remains is the
    float32 ODE solve at rtol = atol = 1e-5 of a log-density change of about D·|log v|/2 ≈ 12 nats over ~100 steps:
    ~1e-2 nats, 0.005 bits/dim per sample. An offset wrong by 0.1 % (0.007) fails it."""
    run, data, sde, u = gaussian_run(m=0.1, s=0.05)
    b = run.bits_per_dim(seed=3)
    assert b.dequantized and b.offset == 7.0 and len(b.bpd) == len(u) and "dequantised" in b.description
    y = torch.cat([dequantize(u[i:i + 128], stream_generator(3, DEQUANTIZE_STREAM, i)) for i in range(0, len(u), 128)])
    want = -log2_density(data, sde, y) / D + 7
    assert (b.bpd.double() - want).abs().max() < 0.005


def test_expected_dequantized_bpd_and_the_raw_density():
    """Averaged over the dequantisation noise, the bits/dim is the closed form of E_U[−log₂ p(y)]/D + 7 (within 4
    standard errors); without dequantisation it is −log₂ p(x)/D at the bin values, labelled as a raw density."""
    run, data, sde, u = gaussian_run(m=0.1, s=0.05, n=512)
    b = run.bits_per_dim(seed=0)
    alpha, sigma = (c.item() for c in sde.marginal_coeffs(torch.tensor([sde.sampling_eps], dtype=F64)))
    v, mean, w = alpha**2 * 0.05**2 + sigma**2, alpha * 0.1, 2 / 256
    lo = -1 + u.double().flatten(1) * w  # each bin [lo, lo + w): E (y − mean)² = (lo + w/2 − mean)² + w²/12
    expected = (0.5 * math.log(2 * math.pi * v) + ((lo + w / 2 - mean) ** 2 + w**2 / 12) / (2 * v)).mean(1) / math.log(2)
    err = b.bpd.double() - (expected + 7)
    assert err.mean().abs() < 4 * err.std() / len(err) ** 0.5 + 0.01
    raw = run.bits_per_dim(seed=0, dequantize=False)
    assert not raw.dequantized and raw.offset == 0 and "not a likelihood" in raw.description
    x = run.data.eval_data
    assert (raw.bpd.double() + log2_density(data, sde, x) / D).abs().max() < 0.01


def test_sharp_8_bit_data_never_goes_below_zero_and_stays_above_its_entropy():
    """Data nearly on one bin: the raw density gives negative bits/dim (the symptom), the dequantised number stays
    above the exact code length −log₂ P(u)/D of the discretised density p_eps (Jensen), hence above 0."""
    run, data, sde, u = gaussian_run(m=0.1, s=0.002)
    raw = run.bits_per_dim(dequantize=False)
    b = run.bits_per_dim()
    assert raw.mean < -3 and b.mean > 0 and bool((b.bpd > 0).all())
    alpha, sigma = (c.item() for c in sde.marginal_coeffs(torch.tensor([sde.sampling_eps], dtype=F64)))
    std, mean, w = math.sqrt(alpha**2 * 0.002**2 + sigma**2), alpha * 0.1, 2 / 256
    normal = torch.distributions.Normal(torch.tensor(mean, dtype=F64), torch.tensor(std, dtype=F64))
    lo = -1 + u.double().flatten(1) * w
    code_length = -(normal.cdf(lo + w) - normal.cdf(lo)).log2().mean(1)
    assert b.mean >= code_length.mean().item() - 0.01


def test_toy_data_is_not_dequantized():
    from scoresde.data import ToyData
    run, *_ = gaussian_run(m=0.1, s=0.05)
    assert ToyData("checkerboard", n_eval=8).eval_uint8 is None and run.family.continuous_density


def test_compare_refuses_a_negative_bpd_n_in_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--workdir", "nowhere", "--bpd-n", "-5"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--bpd-n" in err and "must be an integer >= 0, got -5" in err
    assert len(err.strip().splitlines()) == 1
