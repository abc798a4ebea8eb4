import pytest
import torch

from scoresde.models import MLP, UNet


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(embedding="fourier", skip_rescale=True),
    dict(num_classes=10),
])
def test_unet_shapes_and_device(kwargs, device):
    net = UNet(in_channels=1, resolution=8, ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), **kwargs).to(device)
    x, t = torch.randn(3, 1, 8, 8, device=device), torch.rand(3, device=device)
    assert net(x, t).shape == x.shape and net(x, t).device.type == device.type


def test_unet_class_conditioning_and_null_label():
    torch.manual_seed(0)
    net = UNet(in_channels=1, resolution=8, ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), num_classes=3).eval()
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    null = net(x, t)  # y=None is the extra "no label" class, index 3
    assert torch.equal(null, net(x, t, torch.full((2,), 3)))
    assert not torch.allclose(null, net(x, t, torch.zeros(2, dtype=torch.long)))


@pytest.mark.parametrize("ch", [4, 8, 16, 32, 64, 128])
def test_every_resblock_feels_the_embedding(ch):
    """The embedding is added per channel just before a GroupNorm: with one channel per group the norm would
    subtract it again and the network would ignore t and y (small U-Nets did, before group_norm kept ≥ 4
    channels per group). Changing only the embedding must change each block's output substantially."""
    from scoresde.models.layers import ResBlock, group_norm
    torch.manual_seed(0)
    block = ResBlock(ch, ch, emb_dim=32)
    x = torch.randn(2, ch, 8, 8)
    a, b = block(x, torch.randn(2, 32)), block(x, torch.randn(2, 32))
    assert ((a - b).norm() / (a - x).norm()).item() > 0.05
    assert ch // group_norm(ch).num_groups >= min(4, ch) and (ch < 128 or group_norm(ch).num_groups == 32)


def test_small_unet_output_depends_on_time_and_label():
    torch.manual_seed(0)
    net = UNet(in_channels=1, resolution=28, ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(),
               time_scale=1000.0, num_classes=10).eval()
    x = torch.randn(4, 1, 28, 28)
    out = net(x, torch.full((4,), 0.5), torch.zeros(4, dtype=torch.long))
    other_t = net(x, torch.full((4,), 0.9), torch.zeros(4, dtype=torch.long))
    other_y = net(x, torch.full((4,), 0.5), torch.full((4,), 7))
    assert ((out - other_t).norm() / out.norm()).item() > 0.05
    assert ((out - other_y).norm() / out.norm()).item() > 0.05


def test_time_scale_is_applied_before_the_embedding():
    torch.manual_seed(0)
    a = MLP(dim=2, time_scale=1000.0)
    b = MLP(dim=2, time_scale=1.0)
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 2)
    assert torch.allclose(a(x, torch.full((4,), 0.25)), b(x, torch.full((4,), 250.0)))


def test_unet_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"embedding must be one of \['sinusoidal', 'fourier'\]"):
        UNet(embedding="learned")
    with pytest.raises(ValueError, match="resolution 30 must be divisible by 2\\^\\(len\\(ch_mult\\) - 1\\) = 8"):
        UNet(resolution=30)
