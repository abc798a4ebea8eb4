import math

import pytest
import torch

import scoresde
from scoresde.likelihood import dequantize, likelihood, uint8_bpd_offset
from problems import SDES, gaussian

F64 = torch.float64


class ExactPriorSDE:
    """Wraps an SDE but replaces its N(0, prior_std² I) prior by the true p_T of the data,
    so that the likelihood's only error is the ODE solver's."""

    def __init__(self, sde, data):
        self.sde, self.data = sde, data

    def __getattr__(self, name):
        return getattr(self.sde, name)

    def prior_logp(self, z):
        return self.data.log_prob(self.sde, z, torch.full((z.shape[0],), self.sde.T, dtype=z.dtype))


def _exact_bpd(data, sde, x):
    t = torch.full((x.shape[0],), sde.sampling_eps, dtype=F64)
    return -data.log_prob(sde, x, t) / (x.shape[1] * math.log(2))


@pytest.mark.parametrize("name", list(SDES))
def test_exact_trace_matches_closed_form(name):
    """With the exact trace and the true p_T as prior, every sample's bits/dim is right to 1e-3."""
    sde, data = SDES[name](), gaussian(dim=8)
    x = data.sample(64, torch.Generator().manual_seed(0))
    result = likelihood(data.score_fn(sde), ExactPriorSDE(sde, data), x, trace="exact", rtol=1e-6, atol=1e-6)
    assert (result.bpd - _exact_bpd(data, sde, x)).abs().max() < 1e-3
    assert result.nfe > 10 and result.z.shape == x.shape


@pytest.mark.parametrize("name", ["vp", "vp_cosine", "subvp"])
def test_standard_prior_within_0_01_bpd(name):
    """With the usual N(0, I) prior, the NLL of Gaussian data matches the closed form within 0.01 bits/dim."""
    sde, data = SDES[name](), gaussian(dim=8)
    x = data.sample(64, torch.Generator().manual_seed(0))
    result = likelihood(data.score_fn(sde), sde, x, trace="exact")
    assert (result.bpd - _exact_bpd(data, sde, x)).abs().max() < 0.01


def test_ve_standard_prior_within_0_01_bpd_on_average():
    """Under VE the N(0, σ_max² I) prior misses p_T's mean by μ: 0.01 bpd per sample at most, less on average."""
    sde, data = scoresde.VESDE(), gaussian(dim=8)
    x = data.sample(64, torch.Generator().manual_seed(0))
    err = likelihood(data.score_fn(sde), sde, x, trace="exact").bpd - _exact_bpd(data, sde, x)
    assert err.mean().abs() < 0.01 and err.abs().max() < 0.03


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(noise):
    """The Hutchinson estimate averaged over 256 samples is within 5 standard errors of the exact NLL."""
    sde, data = scoresde.VPSDE(), gaussian(dim=16)
    x = data.sample(256, torch.Generator().manual_seed(0))
    result = likelihood(data.score_fn(sde), ExactPriorSDE(sde, data), x, noise=noise,
                        generator=torch.Generator().manual_seed(1))
    err = result.bpd - _exact_bpd(data, sde, x)
    assert err.mean().abs() < 5 * err.std() / math.sqrt(len(err)), (err.mean(), err.std())


def test_scipy_and_torch_solvers_agree():
    sde, data = scoresde.VPSDE(), gaussian(dim=4)
    x = data.sample(8, torch.Generator().manual_seed(0))
    a = likelihood(data.score_fn(sde), sde, x, trace="exact", method="dopri5")
    b = likelihood(data.score_fn(sde), sde, x, trace="exact", method="rk45")
    assert torch.allclose(a.bpd, b.bpd, atol=1e-4) and a.nfe == pytest.approx(b.nfe, rel=0.2)


def test_images_and_device(device):
    sde, data = scoresde.VPSDE(), gaussian(dim=12)
    x = data.sample(4, torch.Generator().manual_seed(0)).to(device).reshape(4, 3, 2, 2)
    result = likelihood(data.score_fn(sde), sde, x, generator=torch.Generator(device=device).manual_seed(0))
    assert result.bpd.shape == (4,) and result.bpd.device.type == device.type and torch.isfinite(result.bpd).all()


def test_uint8_dequantisation_offset():
    assert uint8_bpd_offset((-1.0, 1.0)) == pytest.approx(7.0)
    assert uint8_bpd_offset((0.0, 1.0)) == pytest.approx(8.0)
    u = torch.tensor([[0, 255]], dtype=torch.uint8)
    y = dequantize(u, torch.Generator().manual_seed(0))
    assert -1.0 <= y[0, 0] < -1 + 2 / 256 and 1 - 2 / 256 <= y[0, 1] < 1.0
    with pytest.raises(ValueError, match="data_range must be"):
        uint8_bpd_offset((1.0, 1.0))


@pytest.mark.parametrize("kwargs, match", [
    (dict(trace="stochastic"), r"trace must be one of \['exact', 'hutchinson'\]"),
    (dict(noise="uniform"), r"noise must be one of \['gaussian', 'rademacher'\]"),
    (dict(method="rk4"), r"method must be one of \['dopri5', 'rk45'\]"),
    (dict(eps=1.5), r"eps must lie in \(0, T\)"),
])
def test_bad_likelihood_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        likelihood(lambda x, t: -x, scoresde.VPSDE(), torch.randn(2, 2), **kwargs)
