"""The one place where configs become objects. Everything else takes plain keyword arguments."""
from __future__ import annotations

import torch

from .data import build_data
from .data.toy import TOY
from .losses import DDPMLoss, DSMLoss
from .models import MLP, UNet
from .parameterization import get_score_fn
from .sampling import get_sampler
from .sde import VESDE, VPSDE, subVPSDE
from .vlb_loss import VLBLoss


def build_sde(c):
    """config.sde → VPSDE / subVPSDE / VESDE."""
    if c.type == "ve":
        return VESDE(sigma_min=c.sigma_min, sigma_max=c.sigma_max, N=c.N)
    cls = VPSDE if c.type == "vp" else subVPSDE
    return cls(beta_min=c.beta_min, beta_max=c.beta_max, N=c.N, schedule=c.schedule)


def build_data_from_config(config):
    d = config.data
    return build_data(d.dataset, root=d.root, image_size=d.image_size, centered=d.centered,
                      random_flip=d.random_flip, n_eval=d.n_eval, seed=config.training.seed)


def build_model(c, data_shape) -> torch.nn.Module:
    """config.model and the data's per-sample shape → a network."""
    if c.name == "mlp":
        if len(data_shape) != 1:
            raise ValueError(f"config.model.name='mlp' needs flat data, got per-sample shape {data_shape}; use 'unet'")
        return MLP(dim=data_shape[0], hidden=c.hidden, layers=c.layers, emb_dim=c.emb_dim, time_scale=c.time_scale,
                   out_dim=data_shape[0] * (2 if c.learned_variance else 1))
    if len(data_shape) != 3:
        raise ValueError(f"config.model.name='unet' needs images [C, H, W], got per-sample shape {data_shape}")
    return UNet(in_channels=data_shape[0], resolution=data_shape[-1], ch=c.ch, ch_mult=tuple(c.ch_mult),
                num_res_blocks=c.num_res_blocks, attn_resolutions=tuple(c.attn_resolutions), dropout=c.dropout,
                embedding=c.embedding, time_scale=c.time_scale, fourier_scale=c.fourier_scale,
                skip_rescale=c.skip_rescale, num_classes=c.num_classes or None,
                out_channels=data_shape[0] * (2 if c.learned_variance else 1))


def build_score_fn(model, sde, config):
    return get_score_fn(model, sde, config.model.parameterization, continuous=config.loss.continuous,
                        learned_variance=config.model.learned_variance)


def build_loss_fn(sde, config):
    """A function (model, x0, generator) → scalar loss."""
    c = config.loss
    if not c.continuous and c.objective != "simple":  # L_vlb or L_hybrid, with its importance sampler's state
        return VLBLoss(sde, config.model.parameterization, c.objective, config.model.learned_variance,
                       c.vlb_weight, c.importance_sampling, c.reduce, decoder=vlb_decoder(config))
    if not c.continuous:
        ddpm = DDPMLoss(sde, parameterization=config.model.parameterization, reduce=c.reduce)
        return lambda model, x0, generator=None: ddpm(model, x0, generator)
    dsm = DSMLoss(sde, c.weighting, eps=c.eps, reduce=c.reduce, importance_sampling=c.importance_sampling)
    return lambda model, x0, generator=None: dsm(build_score_fn(model, sde, config), x0, generator)


def vlb_decoder(config) -> str:
    """L_0's decoder: a density for the continuous toy data, the discretised Gaussian for 8-bit images in [−1, 1]."""
    if config.data.dataset in TOY:
        return "gaussian"
    if not config.data.centered:
        raise ValueError("the variational bound's discretised decoder needs images in [-1, 1]: set "
                         "config.data.centered=True")
    return "discretized"


def build_sampler(config, name=None, steps=None, **options):
    """A sampler by name (default config.sampling.name) with `steps` (default config.sampling.steps, unless a grid
    `ts` is given)."""
    if "ts" not in options and "respacing" not in options:
        options["steps"] = steps or config.sampling.steps
    elif steps is not None:
        options["steps"] = steps
    return get_sampler(name or config.sampling.name, **options)
