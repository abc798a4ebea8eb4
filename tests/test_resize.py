"""The linear resizing operators (scoresde.resize) and the image metrics PSNR and SSIM, against closed forms."""
import math

import pytest
import torch

from scoresde import metrics
from scoresde.resize import downsample, low_pass, upsample


def _images(device, shape=(3, 2, 12, 12), seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)


def test_down_and_up_sampling_are_adjoint_and_low_pass_is_an_orthogonal_projection(device):
    x, y = _images(device), _images(device, seed=1)
    z = _images(device, (3, 2, 4, 4), seed=2)
    # U = N² Dᵀ: <D x, z> = <x, U z> / N².
    assert (downsample(x, 3) * z).sum().item() == pytest.approx((x * upsample(z, 3)).sum().item() / 9, rel=1e-12)
    p = low_pass(x, 3)
    assert torch.allclose(low_pass(p, 3), p, atol=1e-14)  # idempotent
    assert (p * y).sum().item() == pytest.approx((x * low_pass(y, 3)).sum().item(), rel=1e-12)  # symmetric
    assert torch.allclose(downsample(p, 3), downsample(x, 3), atol=1e-14)  # keeps the low-resolution image
    assert downsample(x, 4)[0, 1, 2, 0].item() == pytest.approx(x[0, 1, 8:12, 0:4].mean().item(), rel=1e-12)
    assert torch.equal(low_pass(x, 1), x)


def test_resize_rejects_bad_factors_and_shapes():
    x = torch.zeros(1, 1, 10, 10)
    with pytest.raises(ValueError, match="factor must divide the image size: got factor=3"):
        downsample(x, 3)
    with pytest.raises(ValueError, match="factor"):
        upsample(x, 0)
    with pytest.raises(ValueError, match=r"x must be a batch of images \[B, C, H, W\]"):
        low_pass(torch.zeros(10, 10), 2)


def test_psnr_in_closed_form(device):
    x = _images(device)
    assert torch.allclose(metrics.psnr(x, x + 0.1), torch.full((3,), 20.0, dtype=torch.float64, device=device))
    assert metrics.psnr(x, x + 0.5, data_range=2.0)[0].item() == pytest.approx(10 * math.log10(4 / 0.25))
    assert math.isinf(metrics.psnr(x, x)[0].item())


def test_ssim_in_closed_form_and_against_a_direct_sum(device):
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    a = torch.full((1, 1, 9, 9), 0.3, dtype=torch.float64, device=device)
    # Constant images: no variance, so SSIM is the luminance term (2 μx μy + C1)/(μx² + μy² + C1).
    assert metrics.ssim(a, 2 * a).item() == pytest.approx((2 * .3 * .6 + c1) / (.09 + .36 + c1), rel=1e-12)
    x, y = _images(device, (2, 1, 9, 9)), _images(device, (2, 1, 9, 9), seed=1)
    assert torch.allclose(metrics.ssim(x, x), torch.ones(2, dtype=torch.float64, device=device))
    assert torch.allclose(metrics.ssim(x, y), metrics.ssim(y, x))
    # Direct weighted sums over the 3 x 3 valid positions of a 7 x 7 window, for image 1.
    g = torch.exp(-0.5 * ((torch.arange(7.0, dtype=torch.float64) - 3) / 1.5) ** 2)
    w = (g[:, None] * g[None, :]) / g.sum() ** 2
    values = []
    for i in range(3):
        for j in range(3):
            u, v = x[1, 0, i:i + 7, j:j + 7].cpu(), y[1, 0, i:i + 7, j:j + 7].cpu()
            mu, mv = (w * u).sum(), (w * v).sum()
            vu, vv, cuv = (w * (u - mu) ** 2).sum(), (w * (v - mv) ** 2).sum(), (w * (u - mu) * (v - mv)).sum()
            values.append((2 * mu * mv + c1) * (2 * cuv + c2) / ((mu ** 2 + mv ** 2 + c1) * (vu + vv + c2)))
    assert metrics.ssim(x, y)[1].item() == pytest.approx(torch.stack(values).mean().item(), rel=1e-10)


def test_image_metrics_reject_bad_input():
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="x and y must have the same shape"):
        metrics.psnr(x, torch.zeros(2, 1, 4, 4))
    with pytest.raises(TypeError, match=r"y must be a tensor of images \[B, C, H, W\]"):
        metrics.ssim(x, x.numpy())
    with pytest.raises(ValueError, match="window must fit in the image: got window=11"):
        metrics.ssim(x, x, window=11)
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(x, x, data_range=0)


def test_restoration_metrics_report_means_and_standard_errors():
    truth = _images("cpu", (4, 1, 8, 8))
    x = truth + 0.1
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    r = metrics.restoration_metrics(x, truth, observe=lambda v: downsample(v, 2), observed=downsample(truth, 2),
                                    classifier=lambda v: logits, labels=torch.tensor([0, 1, 1, 1]))
    assert r["psnr"][0] == pytest.approx(20.0) and r["psnr"][1] == pytest.approx(0.0, abs=1e-9)
    assert r["consistency"][0] == pytest.approx(0.01) and r["ssim"][0] == metrics.ssim(x, truth).mean().item()
    assert r["accuracy"] == (pytest.approx(0.5), pytest.approx(0.5 / 3 ** 0.5))  # Bernoulli (1,1,0,0): std 1/√3
