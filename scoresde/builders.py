"""Config → objects for the parts every family shares: SDE, data, networks, score function, loss, prior and sampler.

The one place (with each family's own module, scoresde/families/) where configs become objects; everything else
takes plain keyword arguments.
"""
from __future__ import annotations


import torch

from ._utils import check_choice
from .data import build_data
from .data.toy import TOY
from .losses import DDPMLoss, DSMLoss, EDMLoss, drop_labels, given_labels
from .models.uncertainty import WithUncertainty
from .models import MLP, UNet
from .parameterization import get_score_fn
from .prior import estimate_prior
from .sampling import get_sampler
from .sde import EDMSDE, VESDE, VPSDE, subVPSDE
from .vlb_loss import VLBLoss


def build_sde(c):
    """config.sde → VPSDE / subVPSDE / VESDE / EDMSDE."""
    if c.type == "ve":
        return VESDE(sigma_min=c.sigma_min, sigma_max=c.sigma_max, N=c.N)
    if c.type == "edm":
        return EDMSDE(sigma_min=c.sigma_min, sigma_max=c.sigma_max, N=c.N)
    cls = VPSDE if c.type == "vp" else subVPSDE
    return cls(beta_min=c.beta_min, beta_max=c.beta_max, N=c.N, schedule=c.schedule)


def build_data_from_config(config):
    d = config.data
    return build_data(d.dataset, root=d.root, image_size=d.image_size, centered=d.centered,
                      random_flip=d.random_flip, n_eval=d.n_eval, seed=config.training.seed)


def _mlp(c, data_shape):
    if len(data_shape) != 1:
        raise ValueError(f"config.model.name='mlp' needs flat data, got per-sample shape {data_shape}; use 'unet'")
    return MLP(dim=data_shape[0], hidden=c.hidden, layers=c.layers, emb_dim=c.emb_dim, time_scale=c.time_scale,
               num_classes=c.num_classes or None, out_dim=data_shape[0] * (2 if c.learned_variance else 1))


def build_unet(c, data_shape, cond_channels: int = 0):
    """config.model → the U-Net; cond_channels: channels of a conditioning image read beside x (SR3)."""
    if len(data_shape) != 3:
        raise ValueError(f"config.model.name='unet' needs images [C, H, W], got per-sample shape {data_shape}")
    return UNet(in_channels=data_shape[0], resolution=data_shape[-1], ch=c.ch, ch_mult=tuple(c.ch_mult),
                num_res_blocks=c.num_res_blocks, attn_resolutions=tuple(c.attn_resolutions), dropout=c.dropout,
                embedding=c.embedding, time_scale=c.time_scale, fourier_scale=c.fourier_scale,
                skip_rescale=c.skip_rescale, num_classes=c.num_classes or None,
                out_channels=data_shape[0] * (2 if c.learned_variance else 1), cond_channels=cond_channels)


def _ncsnpp(c, data_shape, sde=None, continuous=True, centered=True):
    """NCSN++ / DDPM++ (config.model.ncsnpp), fed score_sde's conditioning input for config.sde."""
    from .models.ncsnpp import NCSNpp, NoiseConditioned
    if len(data_shape) != 3:
        raise ValueError(f"config.model.name='ncsnpp' needs images [C, H, W], got per-sample shape {data_shape}")
    n = c.ncsnpp
    net = NCSNpp(in_channels=data_shape[0], resolution=data_shape[-1], nf=c.ch, ch_mult=tuple(c.ch_mult),
                 num_res_blocks=c.num_res_blocks, attn_resolutions=tuple(c.attn_resolutions), dropout=c.dropout,
                 resamp_with_conv=n.resamp_with_conv, conditional=n.conditional, fir=n.fir,
                 fir_kernel=tuple(n.fir_kernel), skip_rescale=c.skip_rescale, resblock=n.resblock,
                 progressive=n.progressive, progressive_input=n.progressive_input,
                 progressive_combine=n.progressive_combine, init_scale=n.init_scale,
                 embedding="fourier" if c.embedding == "fourier" else "positional", fourier_scale=c.fourier_scale,
                 scale_by_sigma=n.scale_by_sigma, nonlinearity=n.nonlinearity, centered=centered,
                 out_channels=data_shape[0] * (2 if c.learned_variance else 1))
    if sde is not None and sde.type == "ve":
        return NoiseConditioned(net, "sigma", sigma_min=sde.sigma_min, sigma_max=sde.sigma_max)
    return NoiseConditioned(net, "time" if continuous else "index")


def _edm(c, data_shape, sde=None, continuous=True, centered=True):
    """An EDM network (config.model.edm: its preconditioner and constructor arguments) as an x₀-prediction of t."""
    import json
    from .models.edm import PRECONDITIONERS, EDMDenoiser
    kwargs = json.loads(c.edm.kwargs)
    precond = PRECONDITIONERS[check_choice(c.edm.precond, "config.model.edm.precond", PRECONDITIONERS)](**kwargs)
    if tuple(precond.data_shape) != tuple(data_shape):
        raise ValueError(f"config.model.edm.kwargs give images {list(precond.data_shape)}, but the data are "
                         f"{list(data_shape)}")
    return EDMDenoiser(precond, build_sde(sde) if sde is not None else VESDE(sigma_min=0.002, sigma_max=80.0))


class _DiffusersUNet(torch.nn.Module):
    """A diffusers UNet2DModel called as scoresde calls a network: with σ(t) of the VE SDE ("sigma"; the UNet
    returns the score) or with DDPM's step index ("index")."""

    def __init__(self, unet, input: str, sigma_min: float, sigma_max: float, shape):
        super().__init__()
        self.unet, self.input, self.sigma_min, self.sigma_max = unet, input, sigma_min, sigma_max
        self.data_shape, self.num_classes = tuple(shape), None

    def forward(self, x, t):
        cond = self.sigma_min * (self.sigma_max / self.sigma_min) ** t if self.input == "sigma" else t
        return self.unet(x, cond).sample


def _diffusers(c, data_shape, sde=None, continuous=True, centered=True):
    """A diffusers UNet2DModel from config.model.diffusers.config (its config.json), built by diffusers."""
    import json
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise ImportError("config.model.name='diffusers' needs diffusers: pip install 'scoresde[diffusers]'") from None
    unet = UNet2DModel.from_config(json.loads(c.diffusers.config))
    return _DiffusersUNet(unet, c.diffusers.input, sde.sigma_min if sde is not None else 0.01,
                          sde.sigma_max if sde is not None else 1348.0, data_shape)


# config.model.name -> builder (config.model, per-sample data shape, config.sde, continuous, centered) -> network
MODELS = {"mlp": lambda c, shape, *run: _mlp(c, shape), "unet": lambda c, shape, *run: build_unet(c, shape),
          "ncsnpp": _ncsnpp, "edm": _edm, "diffusers": _diffusers}


def check_labels(config, data) -> None:
    """A model with config.model.num_classes > 0 (class-conditional, or a classifier) needs labelled data with
    that many classes."""
    K, dataset = config.model.num_classes, config.data.dataset
    if K and not data.num_classes:
        raise ValueError(f"config.model.num_classes={K} needs labelled data, but config.data.dataset={dataset!r} "
                         f"has no labels; use 0 or a labelled data set")
    if K and data.num_classes != K:
        raise ValueError(f"config.model.num_classes={K}, but config.data.dataset={dataset!r} has {data.num_classes} "
                         f"classes; set config.model.num_classes={data.num_classes}")


def build_model(c, data_shape, sde=None, continuous: bool = True, centered: bool = True) -> torch.nn.Module:
    """config.model and the data's per-sample shape → a network; NCSN++ also reads config.sde (`sde`), the time
    convention and the data range for its conditioning input and its input scaling."""
    model = MODELS[check_choice(c.name, "config.model.name", MODELS)](c, tuple(data_shape), sde, continuous, centered)
    return WithUncertainty(model) if c.uncertainty else model  # EDM2's u(σ), read by the EDM loss


def build_score_fn(model, sde, config):
    return get_score_fn(model, sde, config.model.parameterization, continuous=config.loss.continuous,
                        learned_variance=config.model.learned_variance, sigma_data=config.model.sigma_data)


def build_loss_fn(sde, config):
    """A function (model, x0, generator=None, y=None) → scalar loss; y are the batch's class labels (or None).

    A class-conditional score model (config.model.num_classes > 0) sees each label replaced by "no label"
    with probability config.loss.p_uncond (label dropout for classifier-free guidance); an unconditional
    one ignores labels.
    """
    c, K = config.loss, config.model.num_classes

    def labels(y, generator):
        return drop_labels(y, c.p_uncond, K, generator) if K and y is not None else None

    if not c.continuous and c.objective != "simple":  # L_vlb or L_hybrid, with its importance sampler's state
        return VLBLoss(sde, config.model.parameterization, c.objective, config.model.learned_variance,
                       c.vlb_weight, c.importance_sampling, c.reduce, decoder=vlb_decoder(config))
    if not c.continuous:
        ddpm = DDPMLoss(sde, parameterization=config.model.parameterization, reduce=c.reduce)

        def ddpm_loss(model, x0, generator=None, y=None):
            loss, y = given_labels(ddpm, y), labels(y, generator)  # the prior of the true class, then label dropout
            return loss(model if y is None else (lambda x, i: model(x, i, y)), x0, generator)
        return ddpm_loss
    if c.weighting == "edm":  # EDM's objective: its own σ density and λ(σ) (Karras et al. 2022)
        edm = EDMLoss(sde, sigma_data=config.model.sigma_data, P_mean=c.P_mean, P_std=c.P_std,
                      density=c.sigma_density, reduce=c.reduce, weight=c.sigma_weight)

        def edm_loss(model, x0, generator=None, y=None):
            y, seen = labels(y, generator), {}
            if config.model.uncertainty:  # the network's one call also returns u(σ): E[λ/e^u ‖D − x₀‖² + u]
                def network(x, label, *cond):
                    out, seen["u"] = model(x, label, *cond, return_logvar=True)
                    return out
            score_fn = build_score_fn(network if config.model.uncertainty else model, sde, config)
            per_sample = edm.per_sample(score_fn if y is None else (lambda x, t: score_fn(x, t, y)), x0, generator)
            return EDMLoss.with_uncertainty(per_sample, seen["u"]).mean() if seen else per_sample.mean()
        return edm_loss
    dsm = DSMLoss(sde, c.weighting, eps=c.eps, reduce=c.reduce, importance_sampling=c.importance_sampling)

    def dsm_loss(model, x0, generator=None, y=None):
        loss = given_labels(dsm, y)  # a per-class prior: the one of the true class, before label dropout
        y, score_fn = labels(y, generator), build_score_fn(model, loss.sde, config)
        return loss(score_fn if y is None else (lambda x, t: score_fn(x, t, y)), x0, generator)
    return dsm_loss


SIGMA_DATA_SAMPLES = 1000  # training samples σ_d is measured on (config.model.sigma_data_from_data)


def estimate_sigma_data(data, seed: int) -> float:
    """EDM's σ_d from the training data: the root mean square √E[x₀²] of SIGMA_DATA_SAMPLES samples (or all of them),
    which is what gives F's target unit variance when the data's mean is not 0; rounded to 4 digits."""
    n = SIGMA_DATA_SAMPLES if data.num_train is None else min(SIGMA_DATA_SAMPLES, data.num_train)
    x, _ = data.train_batch(0, n, seed)
    return round(float(x.double().pow(2).mean().sqrt()), 4)


def data_prior(config, data):
    """config.sde.prior='data': PriorGrad's prior (Lee et al. 2022), the mean and diagonal variance of
    config.sde.prior_samples training samples, per class with config.sde.prior_per_class; None for 'standard'."""
    s = config.sde
    if s.prior == "standard":
        return None
    try:
        x, y = data.train_batch(0, s.prior_samples, config.training.seed)
    except ValueError as e:
        raise ValueError(f"config.sde.prior_samples={s.prior_samples}: {e}") from None
    per_class = s.prior_per_class
    return estimate_prior(x, y if per_class else None, data.num_classes if per_class else 0, s.prior_min_var)


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
