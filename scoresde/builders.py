"""The one place where configs become objects. Everything else takes plain keyword arguments."""
from __future__ import annotations

import torch

from .data import build_data
from ._utils import check_choice
from .data.toy import TOY
from .losses import ClassifierLoss, DDPMLoss, DSMLoss, drop_labels
from .models import MLP, NoisyClassifier, UNet
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


def _mlp(c, data_shape):
    if len(data_shape) != 1:
        raise ValueError(f"config.model.name='mlp' needs flat data, got per-sample shape {data_shape}; use 'unet'")
    return MLP(dim=data_shape[0], hidden=c.hidden, layers=c.layers, emb_dim=c.emb_dim, time_scale=c.time_scale,
               num_classes=c.num_classes or None, out_dim=data_shape[0] * (2 if c.learned_variance else 1))


def _unet(c, data_shape):
    if len(data_shape) != 3:
        raise ValueError(f"config.model.name='unet' needs images [C, H, W], got per-sample shape {data_shape}")
    return UNet(in_channels=data_shape[0], resolution=data_shape[-1], ch=c.ch, ch_mult=tuple(c.ch_mult),
                num_res_blocks=c.num_res_blocks, attn_resolutions=tuple(c.attn_resolutions), dropout=c.dropout,
                embedding=c.embedding, time_scale=c.time_scale, fourier_scale=c.fourier_scale,
                skip_rescale=c.skip_rescale, num_classes=c.num_classes or None,
                out_channels=data_shape[0] * (2 if c.learned_variance else 1))


def _classifier(c, data_shape):
    if not c.num_classes:
        raise ValueError("config.model.name='classifier' needs config.model.num_classes > 0 (its number of outputs)")
    return NoisyClassifier(shape=data_shape, num_classes=c.num_classes, ch=c.ch, ch_mult=tuple(c.ch_mult),
                           num_res_blocks=c.num_res_blocks, dropout=c.dropout, time_scale=c.time_scale)


# config.model.name -> (builder, objective): "score" networks are trained by DSM / DDPM's loss and sampled;
# "classifier" networks learn p(y | x_t, t) by cross-entropy and guide a score model.
MODELS = {"mlp": (_mlp, "score"), "unet": (_unet, "score"), "classifier": (_classifier, "classifier")}


def objective(config) -> str:
    """"score" or "classifier": what the run's network learns."""
    return MODELS[check_choice(config.model.name, "config.model.name", MODELS)][1]


def check_labels(config, data) -> None:
    """A class-conditional model or a classifier needs labelled data with config.model.num_classes classes."""
    K, dataset = config.model.num_classes, config.data.dataset
    if K and not data.num_classes:
        raise ValueError(f"config.model.num_classes={K} needs labelled data, but config.data.dataset={dataset!r} "
                         f"has no labels; use 0 or a labelled data set")
    if K and data.num_classes != K:
        raise ValueError(f"config.model.num_classes={K}, but config.data.dataset={dataset!r} has {data.num_classes} "
                         f"classes; set config.model.num_classes={data.num_classes}")


def build_model(c, data_shape) -> torch.nn.Module:
    """config.model and the data's per-sample shape → a network."""
    return MODELS[check_choice(c.name, "config.model.name", MODELS)][0](c, tuple(data_shape))


def build_score_fn(model, sde, config):
    return get_score_fn(model, sde, config.model.parameterization, continuous=config.loss.continuous,
                        learned_variance=config.model.learned_variance)


def build_loss_fn(sde, config):
    """A function (model, x0, generator=None, y=None) → scalar loss; y are the batch's class labels (or None).

    A class-conditional score model (config.model.num_classes > 0) sees each label replaced by "no label"
    with probability config.loss.p_uncond (label dropout for classifier-free guidance); an unconditional
    one ignores labels; a classifier needs them.
    """
    c, K = config.loss, config.model.num_classes
    if objective(config) == "classifier":
        ce = ClassifierLoss(sde, eps=c.eps)

        def classifier_loss(model, x0, generator=None, y=None):
            if y is None:
                raise ValueError("training a classifier needs labelled data; config.data.dataset gives no labels")
            return ce(model, x0, y, generator)
        return classifier_loss

    def labels(y, generator):
        return drop_labels(y, c.p_uncond, K, generator) if K and y is not None else None

    if not c.continuous and c.objective != "simple":  # L_vlb or L_hybrid, with its importance sampler's state
        return VLBLoss(sde, config.model.parameterization, c.objective, config.model.learned_variance,
                       c.vlb_weight, c.importance_sampling, c.reduce, decoder=vlb_decoder(config))
    if not c.continuous:
        ddpm = DDPMLoss(sde, parameterization=config.model.parameterization, reduce=c.reduce)

        def ddpm_loss(model, x0, generator=None, y=None):
            y = labels(y, generator)
            return ddpm(model if y is None else (lambda x, i: model(x, i, y)), x0, generator)
        return ddpm_loss
    dsm = DSMLoss(sde, c.weighting, eps=c.eps, reduce=c.reduce, importance_sampling=c.importance_sampling)

    def dsm_loss(model, x0, generator=None, y=None):
        y, score_fn = labels(y, generator), build_score_fn(model, sde, config)
        return dsm(score_fn if y is None else (lambda x, t: score_fn(x, t, y)), x0, generator)
    return dsm_loss


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
