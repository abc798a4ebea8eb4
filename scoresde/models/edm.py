"""EDM's networks (Karras et al. 2022): SongUNet (DDPM++ / NCSN++), DhariwalUNet (ADM), and the preconditioners
that make a network a denoiser D(x; σ) = c_skip x + c_out F(c_in x; c_noise).

The parameters carry EDM's names (`enc['32x32_block0'].conv0.weight`, `map_layer0.bias`, ...), so an EDM network's
state dict loads as it is. `scoresde.importers.edm` reads EDM's pickles without running them; `EDMDenoiser`
makes a preconditioned network a scoresde model (an x₀-prediction of t on a VP or VE SDE).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn.functional import silu


def _init(shape, mode: str, fan_in: int, fan_out: int) -> torch.Tensor:
    """EDM's initialisations: Xavier or Kaiming, uniform or normal."""
    if mode == "xavier_uniform":
        return math.sqrt(6 / (fan_in + fan_out)) * (torch.rand(*shape) * 2 - 1)
    if mode == "xavier_normal":
        return math.sqrt(2 / (fan_in + fan_out)) * torch.randn(*shape)
    if mode == "kaiming_uniform":
        return math.sqrt(3 / fan_in) * (torch.rand(*shape) * 2 - 1)
    if mode == "kaiming_normal":
        return math.sqrt(1 / fan_in) * torch.randn(*shape)
    raise ValueError(f"init_mode must be xavier_uniform, xavier_normal, kaiming_uniform or kaiming_normal, got {mode!r}")


class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=True, init_mode="kaiming_normal", init_weight=1.0, init_bias=0.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        fans = dict(mode=init_mode, fan_in=in_features, fan_out=out_features)
        self.weight = nn.Parameter(_init([out_features, in_features], **fans) * init_weight)
        self.bias = nn.Parameter(_init([out_features], **fans) * init_bias) if bias else None

    def forward(self, x):
        x = x @ self.weight.to(x.dtype).t()
        return x.add_(self.bias.to(x.dtype)) if self.bias is not None else x


class Conv2d(nn.Module):
    """A convolution with optional ×2 up- or down-sampling by a separable FIR filter (`resample_filter`), fused
    into the convolution or applied before (up) / after (down) it; kernel 0 resamples only."""

    def __init__(self, in_channels, out_channels, kernel, bias=True, up=False, down=False, resample_filter=(1, 1),
                 fused_resample=False, init_mode="kaiming_normal", init_weight=1.0, init_bias=0.0):
        super().__init__()
        if up and down:
            raise ValueError("Conv2d: up and down exclude each other")
        self.in_channels, self.out_channels, self.up, self.down = in_channels, out_channels, up, down
        self.fused_resample = fused_resample
        fans = dict(mode=init_mode, fan_in=in_channels * kernel * kernel, fan_out=out_channels * kernel * kernel)
        self.weight = nn.Parameter(_init([out_channels, in_channels, kernel, kernel], **fans) * init_weight) if kernel else None
        self.bias = nn.Parameter(_init([out_channels], **fans) * init_bias) if kernel and bias else None
        f = torch.as_tensor(resample_filter, dtype=torch.float32)
        self.register_buffer("resample_filter", (torch.outer(f, f) / f.sum().square())[None, None] if up or down else None)

    def forward(self, x):
        w = self.weight.to(x.dtype) if self.weight is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        f = self.resample_filter.to(x.dtype) if self.resample_filter is not None else None
        w_pad = w.shape[-1] // 2 if w is not None else 0
        f_pad = (f.shape[-1] - 1) // 2 if f is not None else 0
        conv, up_conv = nn.functional.conv2d, nn.functional.conv_transpose2d
        if self.fused_resample and self.up and w is not None:
            x = up_conv(x, f.mul(4).tile([self.in_channels, 1, 1, 1]), groups=self.in_channels, stride=2,
                        padding=max(f_pad - w_pad, 0))
            x = conv(x, w, padding=max(w_pad - f_pad, 0))
        elif self.fused_resample and self.down and w is not None:
            x = conv(x, w, padding=w_pad + f_pad)
            x = conv(x, f.tile([self.out_channels, 1, 1, 1]), groups=self.out_channels, stride=2)
        else:
            if self.up:
                x = up_conv(x, f.mul(4).tile([self.in_channels, 1, 1, 1]), groups=self.in_channels, stride=2, padding=f_pad)
            if self.down:
                x = conv(x, f.tile([self.in_channels, 1, 1, 1]), groups=self.in_channels, stride=2, padding=f_pad)
            if w is not None:
                x = conv(x, w, padding=w_pad)
        return x.add_(b.reshape(1, -1, 1, 1)) if b is not None else x


class GroupNorm(nn.Module):
    def __init__(self, num_channels, num_groups=32, min_channels_per_group=4, eps=1e-5):
        super().__init__()
        self.num_groups, self.eps = min(num_groups, num_channels // min_channels_per_group), eps
        self.weight, self.bias = nn.Parameter(torch.ones(num_channels)), nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        return nn.functional.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)


class UNetBlock(nn.Module):
    """EDM's residual block: GroupNorm, SiLU and conv twice, the embedding as a shift (or scale and shift), optional
    ×2 resampling and multi-head self-attention; every sum times skip_scale."""

    def __init__(self, in_channels, out_channels, emb_channels, up=False, down=False, attention=False, num_heads=None,
                 channels_per_head=64, dropout=0.0, skip_scale=1.0, eps=1e-5, resample_filter=(1, 1),
                 resample_proj=False, adaptive_scale=True, init=None, init_zero=None, init_attn=None):
        super().__init__()
        init, init_zero = init or {}, init_zero if init_zero is not None else dict(init_weight=0)
        self.in_channels, self.out_channels, self.emb_channels = in_channels, out_channels, emb_channels
        self.num_heads = 0 if not attention else num_heads if num_heads is not None else out_channels // channels_per_head
        self.dropout, self.skip_scale, self.adaptive_scale = dropout, skip_scale, adaptive_scale
        self.norm0 = GroupNorm(in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels, out_channels, 3, up=up, down=down, resample_filter=resample_filter, **init)
        self.affine = Linear(emb_channels, out_channels * (2 if adaptive_scale else 1), **init)
        self.norm1 = GroupNorm(out_channels, eps=eps)
        self.conv1 = Conv2d(out_channels, out_channels, 3, **init_zero)
        self.skip = None
        if out_channels != in_channels or up or down:
            kernel = 1 if resample_proj or out_channels != in_channels else 0
            self.skip = Conv2d(in_channels, out_channels, kernel, up=up, down=down, resample_filter=resample_filter, **init)
        if self.num_heads:
            self.norm2 = GroupNorm(out_channels, eps=eps)
            self.qkv = Conv2d(out_channels, out_channels * 3, 1, **(init_attn if init_attn is not None else init))
            self.proj = Conv2d(out_channels, out_channels, 1, **init_zero)

    def forward(self, x, emb):
        orig = x
        x = self.conv0(silu(self.norm0(x)))
        params = self.affine(emb).unsqueeze(2).unsqueeze(3).to(x.dtype)
        if self.adaptive_scale:
            scale, shift = params.chunk(2, dim=1)
            x = silu(torch.addcmul(shift, self.norm1(x), scale + 1))
        else:
            x = silu(self.norm1(x.add_(params)))
        x = self.conv1(nn.functional.dropout(x, p=self.dropout, training=self.training))
        x = x.add_(self.skip(orig) if self.skip is not None else orig) * self.skip_scale
        if self.num_heads:
            q, k, v = self.qkv(self.norm2(x)).reshape(x.shape[0] * self.num_heads, x.shape[1] // self.num_heads, 3,
                                                      -1).unbind(2)
            w = torch.einsum("ncq,nck->nqk", q.to(torch.float32),
                             (k / np.sqrt(k.shape[1])).to(torch.float32)).softmax(dim=2).to(q.dtype)
            a = torch.einsum("nqk,nck->ncq", w, v)
            x = self.proj(a.reshape(*x.shape)).add_(x) * self.skip_scale
        return x


class PositionalEmbedding(nn.Module):
    """[cos(x ω_i), sin(x ω_i)] with ω_i = (1/max_positions)^(i / (n/2 − endpoint)) (DDPM++, ADM)."""

    def __init__(self, num_channels, max_positions=10000, endpoint=False):
        super().__init__()
        self.num_channels, self.max_positions, self.endpoint = num_channels, max_positions, endpoint

    def forward(self, x):
        half = self.num_channels // 2
        freqs = torch.arange(half, dtype=torch.float32, device=x.device) / (half - (1 if self.endpoint else 0))
        x = torch.outer(x, ((1 / self.max_positions) ** freqs).to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class FourierEmbedding(nn.Module):
    """[cos(2π x ω_i), sin(2π x ω_i)] with fixed ω_i ~ N(0, scale²) (NCSN++)."""

    def __init__(self, num_channels, scale=16):
        super().__init__()
        self.register_buffer("freqs", torch.randn(num_channels // 2) * scale)

    def forward(self, x):
        x = torch.outer(x, (2 * np.pi * self.freqs).to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


def _decoder_level(dec: nn.ModuleDict, res: int, bottom: bool, ch: int, skips: list, ch_out: int, num_blocks: int,
                   attention, block: dict) -> int:
    """One decoder level: at the bottom two blocks (the first with attention), elsewhere an up-sampler; then
    num_blocks + 1 blocks, each reading a skip, with attention where attention(i); returns the channels."""
    if bottom:
        dec[f"{res}x{res}_in0"] = UNetBlock(ch, ch, attention=True, **block)
        dec[f"{res}x{res}_in1"] = UNetBlock(ch, ch, **block)
    else:
        dec[f"{res}x{res}_up"] = UNetBlock(ch, ch, up=True, **block)
    for i in range(num_blocks + 1):
        dec[f"{res}x{res}_block{i}"] = UNetBlock(ch + skips.pop(), ch_out, attention=attention(i), **block)
        ch = ch_out
    return ch


class SongUNet(nn.Module):
    """DDPM++ and NCSN++ as EDM writes them (its Table 7 configurations A–F use this network)."""

    checkpoint_blocks = (UNetBlock,)  # what activation checkpointing recomputes

    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0, augment_dim=0, model_channels=128,
                 channel_mult=(1, 2, 2, 2), channel_mult_emb=4, num_blocks=4, attn_resolutions=(16,), dropout=0.10,
                 label_dropout=0.0, embedding_type="positional", channel_mult_noise=1, encoder_type="standard",
                 decoder_type="standard", resample_filter=(1, 1)):
        super().__init__()
        for value, name, valid in ((embedding_type, "embedding_type", ("fourier", "positional")),
                                   (encoder_type, "encoder_type", ("standard", "skip", "residual")),
                                   (decoder_type, "decoder_type", ("standard", "skip"))):
            if value not in valid:
                raise ValueError(f"{name} must be one of {list(valid)}, got {value!r}")
        self.label_dropout = label_dropout
        emb_channels, noise_channels = model_channels * channel_mult_emb, model_channels * channel_mult_noise
        init = dict(init_mode="xavier_uniform")
        init_zero = dict(init_mode="xavier_uniform", init_weight=1e-5)
        init_attn = dict(init_mode="xavier_uniform", init_weight=np.sqrt(0.2))
        block = dict(emb_channels=emb_channels, num_heads=1, dropout=dropout, skip_scale=np.sqrt(0.5), eps=1e-6,
                     resample_filter=resample_filter, resample_proj=True, adaptive_scale=False, init=init,
                     init_zero=init_zero, init_attn=init_attn)
        self.map_noise = (PositionalEmbedding(noise_channels, endpoint=True) if embedding_type == "positional"
                          else FourierEmbedding(noise_channels))
        self.map_label = Linear(label_dim, noise_channels, **init) if label_dim else None
        self.map_augment = Linear(augment_dim, noise_channels, bias=False, **init) if augment_dim else None
        self.map_layer0 = Linear(noise_channels, emb_channels, **init)
        self.map_layer1 = Linear(emb_channels, emb_channels, **init)

        self.enc, cout, caux = nn.ModuleDict(), in_channels, in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, 3, **init)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **block)
                if encoder_type == "skip":
                    self.enc[f"{res}x{res}_aux_down"] = Conv2d(caux, caux, 0, down=True, resample_filter=resample_filter)
                    self.enc[f"{res}x{res}_aux_skip"] = Conv2d(caux, cout, 1, **init)
                if encoder_type == "residual":
                    self.enc[f"{res}x{res}_aux_residual"] = Conv2d(caux, cout, 3, down=True, resample_filter=resample_filter,
                                                                   fused_resample=True, **init)
                    caux = cout
            for i in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{i}"] = UNetBlock(cin, cout, attention=res in attn_resolutions, **block)
        skips = [b.out_channels for name, b in self.enc.items() if "aux" not in name]

        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            cout = _decoder_level(self.dec, res, level == len(channel_mult) - 1, cout, skips, model_channels * mult,
                                  num_blocks, lambda i: i == num_blocks and res in attn_resolutions, block)
            if decoder_type == "skip" or level == 0:
                if decoder_type == "skip" and level < len(channel_mult) - 1:
                    self.dec[f"{res}x{res}_aux_up"] = Conv2d(out_channels, out_channels, 0, up=True,
                                                             resample_filter=resample_filter)
                self.dec[f"{res}x{res}_aux_norm"] = GroupNorm(cout, eps=1e-6)
                self.dec[f"{res}x{res}_aux_conv"] = Conv2d(cout, out_channels, 3, **init_zero)

    def forward(self, x, noise_labels, class_labels=None, augment_labels=None):
        emb = self.map_noise(noise_labels)
        emb = emb.reshape(emb.shape[0], 2, -1).flip(1).reshape(*emb.shape)  # [sin, cos], as score_sde orders them
        if self.map_label is not None:
            y = class_labels
            if self.training and self.label_dropout:
                y = y * (torch.rand([x.shape[0], 1], device=x.device) >= self.label_dropout).to(y.dtype)
            emb = emb + self.map_label(y * np.sqrt(self.map_label.in_features))
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = silu(self.map_layer1(silu(self.map_layer0(emb))))
        skips, aux = [], x
        for name, b in self.enc.items():
            if "aux_down" in name:
                aux = b(aux)
            elif "aux_skip" in name:
                x = skips[-1] = x + b(aux)
            elif "aux_residual" in name:
                x = skips[-1] = aux = (x + b(aux)) / np.sqrt(2)
            else:
                x = b(x, emb) if isinstance(b, UNetBlock) else b(x)
                skips.append(x)
        aux = tmp = None
        for name, b in self.dec.items():
            if "aux_up" in name:
                aux = b(aux)
            elif "aux_norm" in name:
                tmp = b(x)
            elif "aux_conv" in name:
                tmp = b(silu(tmp))
                aux = tmp if aux is None else tmp + aux
            else:
                if x.shape[1] != b.in_channels:
                    x = torch.cat([x, skips.pop()], dim=1)
                x = b(x, emb)
        return aux


class DhariwalUNet(nn.Module):
    """ADM (Dhariwal & Nichol 2021) as EDM writes it."""

    checkpoint_blocks = (UNetBlock,)  # what activation checkpointing recomputes

    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0, augment_dim=0, model_channels=192,
                 channel_mult=(1, 2, 3, 4), channel_mult_emb=4, num_blocks=3, attn_resolutions=(32, 16, 8),
                 dropout=0.10, label_dropout=0.0):
        super().__init__()
        self.label_dropout = label_dropout
        emb_channels = model_channels * channel_mult_emb
        init = dict(init_mode="kaiming_uniform", init_weight=np.sqrt(1 / 3), init_bias=np.sqrt(1 / 3))
        init_zero = dict(init_mode="kaiming_uniform", init_weight=0, init_bias=0)
        block = dict(emb_channels=emb_channels, channels_per_head=64, dropout=dropout, init=init, init_zero=init_zero)
        self.map_noise = PositionalEmbedding(model_channels)
        self.map_augment = Linear(augment_dim, model_channels, bias=False, **init_zero) if augment_dim else None
        self.map_layer0 = Linear(model_channels, emb_channels, **init)
        self.map_layer1 = Linear(emb_channels, emb_channels, **init)
        self.map_label = (Linear(label_dim, emb_channels, bias=False, init_mode="kaiming_normal",
                                 init_weight=np.sqrt(label_dim)) if label_dim else None)
        self.enc, cout = nn.ModuleDict(), in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, 3, **init)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **block)
            for i in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{i}"] = UNetBlock(cin, cout, attention=res in attn_resolutions, **block)
        skips = [b.out_channels for b in self.enc.values()]
        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            cout = _decoder_level(self.dec, res, level == len(channel_mult) - 1, cout, skips, model_channels * mult,
                                  num_blocks, lambda i: res in attn_resolutions, block)
        self.out_norm = GroupNorm(cout)
        self.out_conv = Conv2d(cout, out_channels, 3, **init_zero)

    def forward(self, x, noise_labels, class_labels=None, augment_labels=None):
        emb = self.map_noise(noise_labels)
        if self.map_augment is not None and augment_labels is not None:
            emb = emb + self.map_augment(augment_labels)
        emb = self.map_layer1(silu(self.map_layer0(emb)))
        if self.map_label is not None:
            y = class_labels
            if self.training and self.label_dropout:
                y = y * (torch.rand([x.shape[0], 1], device=x.device) >= self.label_dropout).to(y.dtype)
            emb = emb + self.map_label(y)
        emb = silu(emb)
        skips = []
        for b in self.enc.values():
            x = b(x, emb) if isinstance(b, UNetBlock) else b(x)
            skips.append(x)
        for b in self.dec.values():
            if x.shape[1] != b.in_channels:
                x = torch.cat([x, skips.pop()], dim=1)
            x = b(x, emb)
        return self.out_conv(silu(self.out_norm(x)))


NETWORKS = {"SongUNet": SongUNet, "DhariwalUNet": DhariwalUNet}


# -- preconditioning (Karras et al. 2022, Table 1): D(x; σ) = c_skip x + c_out F(c_in x; c_noise) -------------------

class Precond(nn.Module):
    """A network F wrapped into a denoiser D(x; σ) by `coefficients(σ)` = (c_skip, c_out, c_in, c_noise)."""
    out_factor = 1  # output channels of F per image channel (2: iDDPM's learned variance, ignored by D)

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, model_type="SongUNet",
                 **model_kwargs):
        super().__init__()
        if model_type not in NETWORKS:
            raise ValueError(f"model_type must be one of {list(NETWORKS)}, got {model_type!r}")
        self.img_resolution, self.img_channels, self.label_dim, self.use_fp16 = img_resolution, img_channels, label_dim, use_fp16
        self.model = NETWORKS[model_type](img_resolution=img_resolution, in_channels=img_channels,
                                          out_channels=img_channels * self.out_factor, label_dim=label_dim,
                                          **model_kwargs)
        self.data_shape, self.num_classes = (img_channels, img_resolution, img_resolution), None

    def forward(self, x, sigma, class_labels=None, force_fp32=False, **model_kwargs):
        x = x.to(torch.float32)
        sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
        class_labels = (None if self.label_dim == 0 else torch.zeros([1, self.label_dim], device=x.device)
                        if class_labels is None else class_labels.to(torch.float32).reshape(-1, self.label_dim))
        dtype = torch.float16 if self.use_fp16 and not force_fp32 and x.device.type == "cuda" else torch.float32
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        F_x = self.model((c_in * x).to(dtype), c_noise.flatten(), class_labels=class_labels, **model_kwargs)
        return c_skip * x + c_out * F_x[:, :self.img_channels].to(torch.float32)


class VPPrecond(Precond):
    """The VP SDE's parameterisation (Song et al. 2021): c_out = −σ, c_noise = (M − 1) t(σ)."""

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, beta_d=19.9, beta_min=0.1, M=1000,
                 epsilon_t=1e-5, model_type="SongUNet", **model_kwargs):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.beta_d, self.beta_min, self.M, self.epsilon_t = beta_d, beta_min, M, epsilon_t
        self.sigma_min, self.sigma_max = float(self.sigma(epsilon_t)), float(self.sigma(1))

    def coefficients(self, sigma):
        return 1, -sigma, 1 / (sigma ** 2 + 1).sqrt(), (self.M - 1) * self.sigma_inv(sigma)

    def sigma(self, t):
        t = torch.as_tensor(t)
        return ((0.5 * self.beta_d * (t ** 2) + self.beta_min * t).exp() - 1).sqrt()

    def sigma_inv(self, sigma):
        sigma = torch.as_tensor(sigma)
        return ((self.beta_min ** 2 + 2 * self.beta_d * (1 + sigma ** 2).log()).sqrt() - self.beta_min) / self.beta_d


class VEPrecond(Precond):
    """The VE SDE's parameterisation: c_out = σ, c_noise = log(σ/2)."""

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, sigma_min=0.02, sigma_max=100,
                 model_type="SongUNet", **model_kwargs):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def coefficients(self, sigma):
        return 1, sigma, 1, (0.5 * sigma).log()


class iDDPMPrecond(Precond):
    """Improved DDPM's (Nichol & Dhariwal 2021): σ rounded to its M cosine-schedule levels u_j, c_noise = M − 1 − j."""
    out_factor = 2

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, C_1=0.001, C_2=0.008, M=1000,
                 model_type="DhariwalUNet", **model_kwargs):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.C_1, self.C_2, self.M = C_1, C_2, M
        u = torch.zeros(M + 1)
        for j in range(M, 0, -1):
            u[j - 1] = ((u[j] ** 2 + 1) / (self.alpha_bar(j - 1) / self.alpha_bar(j)).clip(min=C_1) - 1).sqrt()
        self.register_buffer("u", u)
        self.sigma_min, self.sigma_max = float(u[M - 1]), float(u[0])

    def coefficients(self, sigma):
        return 1, -sigma, 1 / (sigma ** 2 + 1).sqrt(), self.M - 1 - self.round_sigma(sigma, return_index=True).to(torch.float32)

    def alpha_bar(self, j):
        return (0.5 * np.pi * torch.as_tensor(j) / self.M / (self.C_2 + 1)).sin() ** 2

    def round_sigma(self, sigma, return_index=False):
        sigma = torch.as_tensor(sigma)
        index = torch.cdist(sigma.to(self.u.device).to(torch.float32).reshape(1, -1, 1), self.u.reshape(1, -1, 1)).argmin(2)
        result = index if return_index else self.u[index.flatten()].to(sigma.dtype)
        return result.reshape(sigma.shape).to(sigma.device)


class EDMPrecond(Precond):
    """EDM's own: c_skip = σ_d²/(σ² + σ_d²), c_out = σ σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²), c_noise = ¼ log σ."""

    def __init__(self, img_resolution, img_channels, label_dim=0, use_fp16=False, sigma_min=0, sigma_max=float("inf"),
                 sigma_data=0.5, model_type="DhariwalUNet", **model_kwargs):
        super().__init__(img_resolution, img_channels, label_dim, use_fp16, model_type, **model_kwargs)
        self.sigma_min, self.sigma_max, self.sigma_data = sigma_min, sigma_max, sigma_data

    def coefficients(self, sigma):
        sd = self.sigma_data
        return (sd ** 2 / (sigma ** 2 + sd ** 2), sigma * sd / (sigma ** 2 + sd ** 2).sqrt(),
                1 / (sd ** 2 + sigma ** 2).sqrt(), sigma.log() / 4)


PRECONDITIONERS = {"VPPrecond": VPPrecond, "VEPrecond": VEPrecond, "iDDPMPrecond": iDDPMPrecond,
                   "EDMPrecond": EDMPrecond}


class EDMDenoiser(nn.Module):
    """A preconditioned EDM network as a scoresde model of (x, t) on a VP or VE SDE: with α, σ the SDE's marginal
    coefficients at t, EDM's noise level is σ/α and its input x/α, and D(x/α; σ/α) predicts x₀ (use
    parameterization "x0"). `sde` is any scoresde SDE; scoresde.importers.edm picks the one the network was trained on."""

    def __init__(self, precond: Precond, sde):
        super().__init__()
        self.precond, self.sde = precond, sde
        self.data_shape, self.num_classes = precond.data_shape, precond.label_dim or None

    def forward(self, x, t, y=None):
        alpha, sigma = self.sde.marginal_coeffs(t)
        a = alpha.reshape(-1, *[1] * (x.ndim - 1))
        labels = None if y is None or not self.precond.label_dim else nn.functional.one_hot(
            y.clamp(max=self.precond.label_dim - 1), self.precond.label_dim).float() * (y < self.precond.label_dim)[:, None]
        return self.precond(x / a, sigma / alpha, labels).to(x.dtype)
