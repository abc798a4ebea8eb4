"""NCSN++ / DDPM++: FIR resampling against its definition, score_sde's parameter layout, the configs' parameter
counts, and a few training steps through the CLI. Parity of the forward pass with score_sde's own code, on
identical weights, is `benchmarks/parity.py` (docs/checkpoints.md has its table)."""
from pathlib import Path

import pytest
import torch

from scoresde import families
from scoresde.config import load_config, validate
from scoresde.models.fir import (conv_downsample_2d, downsample_2d, fir_kernel, upfirdn2d, upsample_2d,
                                 upsample_conv_2d)
from scoresde.models.ncsnpp import NCSNpp, NoiseConditioned

ROOT = Path(__file__).resolve().parents[1]
F64 = torch.float64
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def upfirdn_by_definition(x, k, up, down, pad):
    """The same operation written as sums: zero insertion, padding, a true convolution on the valid region."""
    b, c, h, w = x.shape
    z = torch.zeros(b, c, h * up, w * up, dtype=x.dtype)
    z[:, :, ::up, ::up] = x
    p0, p1 = pad
    padded = torch.nn.functional.pad(z, [max(p0, 0), max(p1, 0)] * 2)
    padded = padded[..., max(-p0, 0):padded.shape[-2] - max(-p1, 0), max(-p0, 0):padded.shape[-1] - max(-p1, 0)]
    kh, kw = k.shape
    out_h, out_w = padded.shape[-2] - kh + 1, padded.shape[-1] - kw + 1
    out = torch.zeros(b, c, out_h, out_w, dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            for u in range(kh):
                for v in range(kw):
                    out[..., i, j] += k[u, v] * padded[..., i + kh - 1 - u, j + kw - 1 - v]
    return out[..., ::down, ::down]


@pytest.mark.parametrize("up, down, pad", [(1, 1, (0, 0)), (2, 1, (2, 1)), (1, 2, (1, 1)), (2, 2, (1, 2)),
                                           (1, 1, (-1, 2)), (3, 1, (1, 0))])
def test_upfirdn2d_is_its_definition(up, down, pad):
    g = torch.Generator().manual_seed(0)
    x, k = torch.randn(2, 3, 5, 4, generator=g, dtype=F64), torch.randn(3, 3, generator=g, dtype=F64)
    ours, ref = upfirdn2d(x, k, up, down, pad), upfirdn_by_definition(x, k, up, down, pad)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=0, atol=200 * torch.finfo(F64).eps * 9 * ref.abs().max().item())


@pytest.mark.parametrize("device", DEVICES)
def test_fir_resampling_keeps_constants_and_round_trips_its_shape(device):
    k = fir_kernel((1, 3, 3, 1))
    assert k.sum().item() == pytest.approx(1.0) and torch.equal(k, k.T)
    x = torch.full((1, 2, 8, 8), 3.0, device=device)
    up, down = upsample_2d(x, k), downsample_2d(x, k)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))  # interior: no zeros seen
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 3.0))


def test_fused_fir_convolutions_equal_their_unfused_forms_for_a_pointwise_weight():
    """A 1×1 weight commutes with resampling: the fused up-conv and conv-down equal FIR resampling of the 1×1 conv."""
    g = torch.Generator().manual_seed(1)
    x, w, k = torch.randn(2, 3, 6, 6, generator=g, dtype=F64), torch.randn(4, 3, 1, 1, generator=g, dtype=F64), fir_kernel((1, 3, 3, 1)).to(F64)
    pointwise = torch.nn.functional.conv2d(x, w)
    torch.testing.assert_close(upsample_conv_2d(x, w, k), upsample_2d(pointwise, k))
    torch.testing.assert_close(conv_downsample_2d(x, w, k), downsample_2d(pointwise, k))


def tiny(**kw):
    return NCSNpp(in_channels=1, resolution=8, nf=8, ch_mult=(1,), num_res_blocks=1, attn_resolutions=(8,), **kw)


def test_the_score_sde_layout_of_a_one_level_network():
    """score_sde's `all_modules` list, written out for one level: Fourier W, two dense layers, the input conv, a
    residual block and its attention, the middle (block, attention, block), two up blocks and their attention, and
    GroupNorm + conv; a residual block holds GroupNorm_0, Conv_0, Dense_0, GroupNorm_1, Conv_1 (Conv_2 on a change
    of channels); attention holds GroupNorm_0 and NIN_0…3 with W [in, out] and b."""
    net = tiny(progressive_input="none")
    block = {"GroupNorm_0.weight": (8,), "GroupNorm_0.bias": (8,), "Conv_0.weight": (8, 8, 3, 3), "Conv_0.bias": (8,),
             "Dense_0.weight": (8, 32), "Dense_0.bias": (8,), "GroupNorm_1.weight": (8,), "GroupNorm_1.bias": (8,),
             "Conv_1.weight": (8, 8, 3, 3), "Conv_1.bias": (8,)}
    up_block = {**block, "GroupNorm_0.weight": (16,), "GroupNorm_0.bias": (16,), "Conv_0.weight": (8, 16, 3, 3),
                "Conv_2.weight": (8, 16, 1, 1), "Conv_2.bias": (8,)}
    attn = {"GroupNorm_0.weight": (8,), "GroupNorm_0.bias": (8,),
            **{f"NIN_{i}.{p}": s for i in range(4) for p, s in (("W", (8, 8)), ("b", (8,)))}}
    layout = [{"W": (8,)}, {"weight": (32, 16), "bias": (32,)}, {"weight": (32, 32), "bias": (32,)},
              {"weight": (8, 1, 3, 3), "bias": (8,)}, block, attn, block, attn, block, up_block, up_block, attn,
              {"weight": (8,), "bias": (8,)}, {"weight": (1, 8, 3, 3), "bias": (1,)}]
    expected = {f"all_modules.{i}.{k}": s for i, entry in enumerate(layout) for k, s in entry.items()}
    ours = dict(net.named_parameters())
    mapping = net.score_sde_key_map()
    assert {k: tuple(ours[v].shape) for k, v in mapping.items()} == expected
    assert sorted(mapping.values()) == sorted(ours)


@pytest.mark.parametrize("device", DEVICES)
def test_a_checkpoint_in_score_sde_layout_loads_and_gives_the_same_outputs(device):
    """Weights written under score_sde's names (with its `sigmas` buffer) load through the key map exactly."""
    torch.manual_seed(0)
    source = tiny(progressive_input="residual").to(device).eval()  # eval: no dropout
    state = {k: source.state_dict()[v] for k, v in source.score_sde_key_map().items()}
    state["sigmas"] = torch.ones(10, device=device)
    torch.manual_seed(1)
    target = tiny(progressive_input="residual").to(device).eval()
    mapping = target.score_sde_key_map()
    target.load_state_dict({mapping[k]: v for k, v in state.items() if k != "sigmas"})
    x, sigma = torch.randn(3, 1, 8, 8, device=device), torch.tensor([0.1, 1.0, 10.0], device=device)
    assert torch.equal(source(x, sigma), target(x, sigma))
    target.conv_in.bias.data[0] += 1e-3  # and a changed weight changes the output: the comparison can fail
    assert not torch.equal(source(x, sigma), target(x, sigma))


# The parameter counts of score_sde's models, measured by benchmarks/parity.py from score_sde's own code.
COUNTS = {"vp/ddpmpp_cifar10_continuous.py": 61_804_419, "vp/ddpmpp_deep_cifar10_continuous.py": 106_632_579,
          "vp/ncsnpp_cifar10_continuous.py": 62_693_251, "vp/ncsnpp_deep_cifar10_continuous.py": 107_521_411,
          "subvp/ddpmpp_cifar10_continuous.py": 61_804_419, "subvp/ddpmpp_deep_cifar10_continuous.py": 106_632_579,
          "subvp/ncsnpp_cifar10_continuous.py": 62_693_251, "subvp/ncsnpp_deep_cifar10_continuous.py": 107_521_411,
          "ve/ncsnpp_cifar10_continuous.py": 62_758_915, "ve/ncsnpp_deep_cifar10_continuous.py": 107_587_075,
          "ve/ncsnpp_celebahq_256_continuous.py": 65_574_549, "ve/ncsnpp_ffhq_256_continuous.py": 65_574_549}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_each_score_sde_config_has_the_originals_parameter_count(name):
    config = validate(load_config(str(ROOT / "configs" / name)))
    with torch.device("meta"):  # counts without allocating 100M parameters
        model = families.get_family(config).model(config, (3, config.data.image_size, config.data.image_size))
    assert sum(p.numel() for p in model.parameters()) == COUNTS[name]
    assert isinstance(model, NoiseConditioned) and model.input == ("sigma" if name.startswith("ve/") else "time")


def test_bad_ncsnpp_options_fail_before_training():
    from scoresde import builders
    toy = load_config(str(ROOT / "configs/vp/toy.py"))
    toy.model.name = "ncsnpp"
    with pytest.raises(ValueError, match=r"config.model.name='ncsnpp' needs images \[C, H, W\], got per-sample shape \(2,\)"):
        builders.build_model(toy.model, (2,))
    config = load_config(str(ROOT / "configs/ve/ncsnpp_cifar10_continuous.py"))
    config.model.parameterization = "eps"
    with pytest.raises(ValueError, match="scale_by_sigma=True divides the output by σ: it needs config.model.param"):
        validate(config)
    config = load_config(str(ROOT / "configs/ve/ncsnpp_cifar10_continuous.py"))
    config.model.ncsnpp.progressive = "skip"
    with pytest.raises(ValueError, match=r"config.model.ncsnpp.progressive must be one of \['none', 'output_skip'"):
        validate(config)


@pytest.mark.slow
def test_the_ve_ncsnpp_config_trains_a_few_steps_from_the_cli(tmp_path, capsys):
    from scoresde.cli import main
    from fake_cifar import write_cifar10
    write_cifar10(tmp_path / "cifar10")
    workdir = str(tmp_path / "run")
    main(["train", "--config", str(ROOT / "configs/ve/ncsnpp_cifar10_continuous.py"), "--workdir", workdir,
          f"--config.data.root={tmp_path / 'cifar10'}", "--config.data.n_eval=8", "--config.training.n_iters=2",
          "--config.training.batch_size=2", "--config.model.ch=16", "--config.model.num_res_blocks=1",
          "--config.training.device=cpu", "--config.sampling.steps=3", "--config.sampling.n=2",
          "--config.eval.n_bpd=2", "--no-progress"])
    assert "trained 2 steps" in capsys.readouterr().out
    main(["sample", "--workdir", workdir, "--n", "2", "--sampler", "ddim", "--steps", "3", "--device", "cpu"])
    out = capsys.readouterr().out
    assert "2 samples from step 2" in out
