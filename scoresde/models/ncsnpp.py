"""NCSN++ and DDPM++ (Song et al. 2021, Sec. 4.4 and App. H): the U-Net of score_sde, every variant of it.

One class covers both. DDPM++ is `resblock="biggan"`, `fir=False`, positional embedding, no progressive paths;
NCSN++ adds FIR resampling with the kernel (1, 3, 3, 1), Fourier features of log σ, the `residual` input pyramid
and `scale_by_sigma` (the output divided by σ: a score for the VE SDE). Options:
- `resblock`: "biggan" (resampling inside the residual block) or "ddpm" (separate resampling layers);
- `progressive` (output pyramid): "none", "output_skip" or "residual"; `progressive_input`: "none",
  "input_skip" or "residual"; `progressive_combine`: "sum" or "cat";
- `embedding`: "fourier" (of log cond) or "positional" (of cond); `skip_rescale` divides residual sums by √2.

forward(x, cond): cond is the noise level σ (VE) or the scaled time 999·t (VP, sub-VP), as score_sde feeds it;
`scoresde.builders` adapts scoresde's t to it. The parameters carry readable names; `score_sde_key_map()` maps
score_sde's flat `all_modules.<i>` names one to one onto them, so its checkpoints load exactly.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .fir import (conv_downsample_2d, downsample_2d, fir_kernel, naive_downsample_2d, naive_upsample_2d, upsample_2d,
                  upsample_conv_2d)

RESBLOCKS = ("biggan", "ddpm")
PROGRESSIVE = ("none", "output_skip", "residual")
PROGRESSIVE_INPUT = ("none", "input_skip", "residual")
COMBINE = ("sum", "cat")
EMBEDDINGS = ("fourier", "positional")
NONLINEARITIES = {"swish": nn.SiLU, "elu": nn.ELU, "relu": nn.ReLU, "lrelu": lambda: nn.LeakyReLU(0.2)}


def ddpm_init_(weight: torch.Tensor, scale: float = 1.0, fan_axes=(1, 0)) -> torch.Tensor:
    """DDPM's initialisation: uniform with variance scale / fan_avg (scale 0 becomes 1e-10, a near-zero layer)."""
    receptive = weight[0, 0].numel() if weight.ndim > 2 else 1
    fan_in, fan_out = weight.shape[fan_axes[0]] * receptive, weight.shape[fan_axes[1]] * receptive
    bound = math.sqrt(3 * (scale or 1e-10) / ((fan_in + fan_out) / 2))
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


def conv(in_ch: int, out_ch: int, k: int = 3, scale: float = 1.0, **kwargs) -> nn.Conv2d:
    layer = nn.Conv2d(in_ch, out_ch, k, padding=k // 2, **kwargs)
    ddpm_init_(layer.weight, scale)
    nn.init.zeros_(layer.bias)
    return layer


def dense(in_dim: int, out_dim: int) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    ddpm_init_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def group_norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(ch // 4, 32), ch, eps=1e-6)


class PixelLinear(nn.Module):
    """A linear map of the channels at every pixel, y = xᵀW + b with W [in, out] (score_sde's NIN layer)."""

    def __init__(self, in_ch: int, out_ch: int, scale: float = 0.1):
        super().__init__()
        self.W = nn.Parameter(ddpm_init_(torch.empty(in_ch, out_ch), scale, fan_axes=(1, 0)))
        self.b = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,co->bohw", x, self.W) + self.b[:, None, None]


class Attention(nn.Module):
    """Self-attention over the pixels, with a residual connection."""
    KEYS = {"GroupNorm_0": "norm", "NIN_0": "q", "NIN_1": "k", "NIN_2": "v", "NIN_3": "out"}

    def __init__(self, ch: int, skip_rescale: bool, init_scale: float):
        super().__init__()
        self.norm = group_norm(ch)
        self.q, self.k, self.v = PixelLinear(ch, ch), PixelLinear(ch, ch), PixelLinear(ch, ch)
        self.out = PixelLinear(ch, ch, init_scale)
        self.skip_rescale = skip_rescale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = self.q(y).flatten(2), self.k(y).flatten(2), self.v(y).flatten(2)  # [B, C, HW]
        weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) * c ** -0.5, dim=-1)
        out = x + self.out(torch.einsum("bij,bcj->bci", weights, v).reshape(b, c, h, w))
        return out / math.sqrt(2.0) if self.skip_rescale else out


class Resample(nn.Module):
    """×2 up- or down-sampling: nearest/average or FIR, optionally with a 3×3 convolution."""
    def __init__(self, mode: str, in_ch: int, out_ch: int | None = None, with_conv: bool = False, fir: bool = False,
                 kernel=(1, 3, 3, 1)):
        super().__init__()
        self.KEYS = {"Conv2d_0" if fir else "Conv_0": "conv"}  # score_sde's name of the convolution
        self.mode, self.with_conv, self.fir = mode, with_conv, fir
        out_ch = out_ch or in_ch
        self.register_buffer("kernel", fir_kernel(kernel), persistent=False)
        if with_conv and fir:  # the FIR-fused convolution: weight [out, in, 3, 3] and a bias
            self.conv = nn.Conv2d(in_ch, out_ch, 3)
            ddpm_init_(self.conv.weight)
            nn.init.zeros_(self.conv.bias)
        elif with_conv:
            self.conv = conv(in_ch, out_ch, 3, padding_mode="zeros") if mode == "up" else \
                conv(in_ch, out_ch, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "up":
            if self.fir:
                if not self.with_conv:
                    return upsample_2d(x, self.kernel)
                return upsample_conv_2d(x, self.conv.weight, self.kernel) + self.conv.bias[:, None, None]
            h, w = x.shape[-2:]
            x = F.interpolate(x, (2 * h, 2 * w), mode="nearest")
            return self.conv(x) if self.with_conv else x
        if self.fir:
            if not self.with_conv:
                return downsample_2d(x, self.kernel)
            return conv_downsample_2d(x, self.conv.weight, self.kernel) + self.conv.bias[:, None, None]
        if not self.with_conv:
            return F.avg_pool2d(x, 2, 2)
        return F.conv2d(F.pad(x, (0, 1, 0, 1)), self.conv.weight, self.conv.bias, stride=2)  # as score_sde pads


class ResBlock(nn.Module):
    """A residual block conditioned on the embedding: DDPM's, or BigGAN's with ×2 resampling inside (up / down)."""
    KEYS = {"GroupNorm_0": "norm1", "Conv_0": "conv1", "Dense_0": "emb", "GroupNorm_1": "norm2", "Conv_1": "conv2"}

    def __init__(self, kind: str, in_ch: int, out_ch: int | None, emb_dim: int | None, act: nn.Module,
                 dropout: float, skip_rescale: bool, init_scale: float, up: bool = False, down: bool = False,
                 fir: bool = False, kernel=(1, 3, 3, 1)):
        super().__init__()
        out_ch = out_ch or in_ch
        self.kind, self.act, self.up, self.down, self.fir, self.skip_rescale = kind, act, up, down, fir, skip_rescale
        self.register_buffer("kernel", fir_kernel(kernel), persistent=False)
        self.norm1, self.conv1 = group_norm(in_ch), conv(in_ch, out_ch)
        self.emb = dense(emb_dim, out_ch) if emb_dim is not None else None
        self.norm2, self.dropout, self.conv2 = group_norm(out_ch), nn.Dropout(dropout), conv(out_ch, out_ch, scale=init_scale)
        if kind == "biggan":
            self.skip = conv(in_ch, out_ch, 1) if in_ch != out_ch or up or down else None
        else:  # DDPM's block projects the skip with a pixel-wise linear map
            self.skip = PixelLinear(in_ch, out_ch) if in_ch != out_ch else None
        self.KEYS = {**ResBlock.KEYS, ("Conv_2" if kind == "biggan" else "NIN_0"): "skip"}

    def _resample(self, x):
        if self.up:
            return upsample_2d(x, self.kernel) if self.fir else naive_upsample_2d(x)
        if self.down:
            return downsample_2d(x, self.kernel) if self.fir else naive_downsample_2d(x)
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        h = self.act(self.norm1(x))
        h, x = self._resample(h), self._resample(x)
        h = self.conv1(h)
        if emb is not None:
            h = h + self.emb(self.act(emb))[:, :, None, None]
        h = self.conv2(self.dropout(self.act(self.norm2(h))))
        x = self.skip(x) if self.skip is not None else x
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


class Combine(nn.Module):
    """A 1×1 projection of the input pyramid joined to the features by a sum or a concatenation."""
    KEYS = {"Conv_0": "proj"}

    def __init__(self, in_ch: int, out_ch: int, method: str):
        super().__init__()
        self.proj, self.method = conv(in_ch, out_ch, 1), method

    def forward(self, pyramid: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        p = self.proj(pyramid)
        return torch.cat([p, h], dim=1) if self.method == "cat" else p + h


class OutputHead(nn.Module):
    """GroupNorm, the nonlinearity and a 3×3 convolution: the last layers (and the output pyramid's)."""

    def __init__(self, in_ch: int, out_ch: int, act: nn.Module, scale: float):
        super().__init__()
        self.norm, self.conv, self.act = group_norm(in_ch), conv(in_ch, out_ch, scale=scale), act

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(self.act(self.norm(h)))


def _check(value, name, valid):
    if value not in valid:
        raise ValueError(f"{name} must be one of {list(valid)}, got {value!r}")
    return value


class NCSNpp(nn.Module):
    """score_sde's `ncsnpp` network f(x, cond) for images [B, C, H, W] (NCSN++ and DDPM++, all variants)."""

    checkpoint_blocks = (ResBlock, Attention)  # what activation checkpointing recomputes

    def __init__(self,
                 in_channels: int = 3, resolution: int = 32,
                 nf: int = 128,                      # base channels
                 ch_mult=(1, 2, 2, 2),               # channel multiplier per level
                 num_res_blocks: int = 4,            # residual blocks per level (8: the deep variants)
                 attn_resolutions=(16,),
                 dropout: float = 0.1,
                 resamp_with_conv: bool = True,
                 conditional: bool = True,           # conditioned on the noise level (False: no embedding at all)
                 fir: bool = True, fir_kernel=(1, 3, 3, 1),
                 skip_rescale: bool = True,
                 resblock: str = "biggan",
                 progressive: str = "none", progressive_input: str = "residual", progressive_combine: str = "sum",
                 init_scale: float = 0.0,
                 embedding: str = "fourier",         # of log(cond); "positional": of cond itself
                 fourier_scale: float = 16.0,
                 scale_by_sigma: bool = True,        # divide the output by cond = σ (VE: the output is a score)
                 nonlinearity: str = "swish",
                 centered: bool = True,              # the data lie in [-1, 1]; False: [0, 1], mapped to [-1, 1] first
                 out_channels: int | None = None):
        super().__init__()
        _check(resblock, "resblock", RESBLOCKS)
        _check(progressive, "progressive", PROGRESSIVE)
        _check(progressive_input, "progressive_input", PROGRESSIVE_INPUT)
        _check(progressive_combine, "progressive_combine", COMBINE)
        _check(embedding, "embedding", EMBEDDINGS)
        _check(nonlinearity, "nonlinearity", NONLINEARITIES)
        if resolution % 2 ** (len(ch_mult) - 1):
            raise ValueError(f"resolution {resolution} must be divisible by 2^(len(ch_mult) - 1) = {2 ** (len(ch_mult) - 1)}")
        if scale_by_sigma and embedding != "fourier":
            raise ValueError("scale_by_sigma divides by the noise level σ, which only the 'fourier' embedding receives")
        self.data_shape = (in_channels, resolution, resolution)
        self.nf, self.embedding, self.conditional, self.scale_by_sigma = nf, embedding, conditional, scale_by_sigma
        self.resblock, self.progressive, self.progressive_input = resblock, progressive, progressive_input
        self.skip_rescale, self.centered, self.attn_resolutions = skip_rescale, centered, tuple(attn_resolutions)
        self.num_res_blocks, self.levels = num_res_blocks, len(ch_mult)
        self.act = act = NONLINEARITIES[nonlinearity]()
        out_channels = out_channels or in_channels
        order = []  # our module names, in the order of score_sde's all_modules
        if embedding == "fourier":
            self.fourier_W = nn.Parameter(torch.randn(nf) * fourier_scale, requires_grad=False)
            order.append("fourier")
        emb_dim = 4 * nf  # the blocks have their embedding projection even when unconditional, as in score_sde
        if conditional:
            self.emb1, self.emb2 = dense(2 * nf if embedding == "fourier" else nf, 4 * nf), dense(4 * nf, 4 * nf)
            order += ["emb1", "emb2"]

        def block(in_ch, out_ch=None, **kw):
            return ResBlock(resblock, in_ch, out_ch, emb_dim, act, dropout, skip_rescale, init_scale, fir=fir,
                            kernel=fir_kernel, **kw)

        def attention(ch):
            return Attention(ch, skip_rescale, init_scale)

        res = [resolution // 2 ** i for i in range(self.levels)]
        self.conv_in = conv(in_channels, nf)
        order.append("conv_in")
        self.down_blocks, self.down_attn = nn.ModuleList(), nn.ModuleDict()
        self.downsample, self.input_pyramid = nn.ModuleList(), nn.ModuleList()
        skips, ch, pyramid_ch = [nf], nf, in_channels
        for level in range(self.levels):
            for i in range(num_res_blocks):
                self.down_blocks.append(block(ch, nf * ch_mult[level]))
                ch = nf * ch_mult[level]
                order.append(f"down_blocks.{len(self.down_blocks) - 1}")
                if res[level] in self.attn_resolutions:
                    self.down_attn[f"{level}_{i}"] = attention(ch)
                    order.append(f"down_attn.{level}_{i}")
                skips.append(ch)
            if level == self.levels - 1:
                continue
            self.downsample.append(Resample("down", ch, with_conv=resamp_with_conv, fir=fir, kernel=fir_kernel)
                                   if resblock == "ddpm" else block(ch, down=True))
            order.append(f"downsample.{level}")
            if progressive_input == "input_skip":
                self.input_pyramid.append(Combine(pyramid_ch, ch, progressive_combine))
                order.append(f"input_pyramid.{level}")
                ch = 2 * ch if progressive_combine == "cat" else ch
            elif progressive_input == "residual":
                self.input_pyramid.append(Resample("down", pyramid_ch, ch, with_conv=True, fir=fir, kernel=fir_kernel))
                order.append(f"input_pyramid.{level}")
                pyramid_ch = ch
            skips.append(ch)
        self.pyramid_down = Resample("down", in_channels, fir=fir, kernel=fir_kernel)  # input_skip's, no weights

        self.mid1, self.mid_attn, self.mid2 = block(ch), attention(ch), block(ch)
        order += ["mid1", "mid_attn", "mid2"]

        self.up_blocks, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleDict(), nn.ModuleDict()
        self.output_pyramid = nn.ModuleDict()
        pyramid_ch = 0
        for level in reversed(range(self.levels)):
            for _ in range(num_res_blocks + 1):
                self.up_blocks.append(block(ch + skips.pop(), nf * ch_mult[level]))
                ch = nf * ch_mult[level]
                order.append(f"up_blocks.{len(self.up_blocks) - 1}")
            if res[level] in self.attn_resolutions:
                self.up_attn[str(level)] = attention(ch)
                order.append(f"up_attn.{level}")
            if progressive != "none":
                name = f"output_pyramid.{level}"
                if progressive == "output_skip":
                    self.output_pyramid[str(level)] = OutputHead(ch, out_channels, act, init_scale)
                    order += [name + ".norm", name + ".conv"]
                elif level == self.levels - 1:  # residual: the pyramid starts as a projection of the features
                    head = OutputHead(ch, ch, act, 1.0)
                    self.output_pyramid[str(level)] = head
                    order += [name + ".norm", name + ".conv"]
                    pyramid_ch = ch
                else:
                    self.output_pyramid[str(level)] = Resample("up", pyramid_ch, ch, with_conv=True, fir=fir,
                                                               kernel=fir_kernel)
                    order.append(name)
                    pyramid_ch = ch
            if level != 0:
                self.upsample[str(level)] = (Resample("up", ch, with_conv=resamp_with_conv, fir=fir, kernel=fir_kernel)
                                             if resblock == "ddpm" else block(ch, up=True))
                order.append(f"upsample.{level}")
        self.pyramid_up = Resample("up", out_channels, fir=fir, kernel=fir_kernel)  # output_skip's, no weights
        self.head = OutputHead(ch, out_channels, act, init_scale) if progressive != "output_skip" else None
        if self.head is not None:
            order += ["head.norm", "head.conv"]
        self._score_sde_order = order

    def score_sde_key_map(self) -> dict[str, str]:
        """score_sde's state-dict name → this module's, for every parameter (its `sigmas` buffer is not kept)."""
        ours = dict(self.named_parameters())
        mapping = {}
        for i, name in enumerate(self._score_sde_order):
            prefix = f"all_modules.{i}."
            if name == "fourier":
                mapping[prefix + "W"] = "fourier_W"
                continue
            keys = getattr(self.get_submodule(name), "KEYS", {})  # score_sde's child name -> ours
            for key in [k for k in ours if k == name or k.startswith(name + ".")]:
                inner = key[len(name) + 1:]
                head, _, rest = inner.partition(".")
                theirs = next((t for t, o in keys.items() if o == head), head) if keys else head
                mapping[prefix + (f"{theirs}.{rest}" if rest else theirs)] = key
        return mapping

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        cond = cond.expand(x.shape[0]) if cond.ndim == 0 else cond
        if self.embedding == "fourier":
            proj = torch.log(cond)[:, None] * self.fourier_W[None] * (2 * math.pi)
            emb = torch.cat([torch.sin(proj), torch.cos(proj)], dim=1)
        else:
            half = self.nf // 2
            freqs = torch.exp(torch.arange(half, device=x.device, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
            args = cond.float()[:, None] * freqs[None]
            emb = F.pad(torch.cat([torch.sin(args), torch.cos(args)], dim=1), (0, self.nf % 2))
        emb = self.emb2(self.act(self.emb1(emb))) if self.conditional else None
        if not self.centered:
            x = 2 * x - 1
        pyramid_in = x if self.progressive_input != "none" else None
        hs = [self.conv_in(x)]
        block = iter(self.down_blocks)
        for level in range(self.levels):
            for i in range(self.num_res_blocks):
                h = next(block)(hs[-1], emb)
                if f"{level}_{i}" in self.down_attn:
                    h = self.down_attn[f"{level}_{i}"](h)
                hs.append(h)
            if level == self.levels - 1:
                continue
            down = self.downsample[level]
            h = down(hs[-1]) if self.resblock == "ddpm" else down(hs[-1], emb)
            if self.progressive_input == "input_skip":
                pyramid_in = self.pyramid_down(pyramid_in)
                h = self.input_pyramid[level](pyramid_in, h)
            elif self.progressive_input == "residual":
                pyramid_in = self.input_pyramid[level](pyramid_in)
                pyramid_in = (pyramid_in + h) / math.sqrt(2.0) if self.skip_rescale else pyramid_in + h
                h = pyramid_in
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(hs[-1], emb)), emb)
        pyramid, block = None, iter(self.up_blocks)
        for level in reversed(range(self.levels)):
            for _ in range(self.num_res_blocks + 1):
                h = next(block)(torch.cat([h, hs.pop()], dim=1), emb)
            if str(level) in self.up_attn:
                h = self.up_attn[str(level)](h)
            if self.progressive == "output_skip":
                out = self.output_pyramid[str(level)](h)
                pyramid = out if pyramid is None else self.pyramid_up(pyramid) + out
            elif self.progressive == "residual":
                if pyramid is None:
                    pyramid = self.output_pyramid[str(level)](h)
                else:
                    pyramid = self.output_pyramid[str(level)](pyramid)
                    pyramid = (pyramid + h) / math.sqrt(2.0) if self.skip_rescale else pyramid + h
                    h = pyramid
            if level != 0:
                up = self.upsample[str(level)]
                h = up(h) if self.resblock == "ddpm" else up(h, emb)
        h = pyramid if self.progressive == "output_skip" else self.head(h)
        return h / cond.reshape(-1, *[1] * (h.ndim - 1)) if self.scale_by_sigma else h


def score_sde_kwargs(config) -> dict:
    """NCSNpp's keyword arguments from a score_sde config (its `model` and `data` sections), for its checkpoints."""
    m, d = config.model, config.data
    return dict(in_channels=d.num_channels, resolution=d.image_size, nf=m.nf, ch_mult=tuple(m.ch_mult),
                num_res_blocks=m.num_res_blocks, attn_resolutions=tuple(m.attn_resolutions), dropout=m.dropout,
                resamp_with_conv=m.resamp_with_conv, conditional=m.conditional, fir=m.fir,
                fir_kernel=tuple(m.fir_kernel), skip_rescale=m.skip_rescale, resblock=m.resblock_type.lower(),
                progressive=m.progressive.lower(), progressive_input=m.progressive_input.lower(),
                progressive_combine=m.progressive_combine.lower(), init_scale=m.init_scale,
                embedding=m.embedding_type.lower(), fourier_scale=m.fourier_scale, scale_by_sigma=m.scale_by_sigma,
                nonlinearity=m.nonlinearity.lower(), centered=d.centered)


INPUTS = ("sigma", "time", "index")


class NoiseConditioned(nn.Module):
    """NCSNpp called as scoresde calls a network, f(x, t), with score_sde's conditioning input: σ(t) = σ_min
    (σ_max/σ_min)^t for the VE SDE ("sigma"), 999·t for VP and sub-VP in continuous time ("time"), or DDPM's
    step index as given in discrete time ("index")."""

    def __init__(self, net: NCSNpp, input: str = "time", sigma_min: float = 0.01, sigma_max: float = 50.0,
                 time_scale: float = 999.0):
        super().__init__()
        self.net, self.input = net, _check(input, "input", INPUTS)
        self.sigma_min, self.sigma_max, self.time_scale = sigma_min, sigma_max, time_scale
        self.data_shape, self.num_classes = net.data_shape, None

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.input == "sigma":
            cond = self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        elif self.input == "time":
            cond = t * self.time_scale
        else:
            cond = t
        return self.net(x, cond)
