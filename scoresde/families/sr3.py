"""SR3 super-resolution (Saharia et al. 2021) as a family: a continuous VP model of x₀ given its low-resolution
version, up-sampled (y = U D x₀), that reads the noise level γ = √ᾱ instead of t."""
from __future__ import annotations

import copy

import numpy as np
import torch

from .. import builders
from .. import sr3 as sr3_
from .._utils import ArgumentTypeError, describe
from ..data.toy import TOY
from ..parameterization import get_score_fn
from ..resize import downsample, upsample
from .base import Family, evaluate_likelihood, gaussian_display, npz_path


def build_data(config):
    """The images, each paired with its low-resolution version up-sampled (y = U D x₀)."""
    if config.data.dataset in TOY:
        raise ValueError(f"config.family='sr3' needs images; config.data.dataset={config.data.dataset!r} is a 2-D toy set")
    return sr3_.LowResPairs(builders.build_data_from_config(config), config.sr3.factor)


def build_model(config, data_shape) -> torch.nn.Module:
    """The U-Net reading the noisy image and the up-sampled low-resolution image side by side."""
    return builders.build_unet(config.model, data_shape, cond_channels=data_shape[0])


def build_score_fn(model, sde, config):
    """score_fn(x, t, y), the network seeing γ = α_t of `sde` (any VP schedule, not only the training one)."""
    return get_score_fn(model, sde, config.model.parameterization, continuous=True, noise_level=True)


def build_loss_fn(sde, config):
    loss = sr3_.SR3Loss(sde, config.model.parameterization, norm=config.sr3.norm, reduce=config.loss.reduce)
    return lambda model, x0, generator=None, y=None: loss(model, x0, y, generator)


def bits_per_dim(run, x, generator, y=None):
    """Bits/dim of x given its low-resolution image y = U D x₀ (the held-out conditions; computed from x when
    None), from the conditional probability-flow ODE."""
    from ..likelihood import likelihood
    y = sr3_.low_res_condition(x, run.config.sr3.factor) if y is None else y
    r = likelihood(sr3_.condition_on(run.score_fn, y), run.sde, x, generator=generator)
    return r.bpd, r.nfe


def check(config) -> None:
    """SR3 is a continuous VP model with a U-Net and SR3's own loss, conditioned on images only."""
    wrong = [f"{k}={v!r}" for k, v, ok in (("sde.type", config.sde.type, "vp"), ("model.name", config.model.name, "unet"),
                                          ("loss.continuous", config.loss.continuous, True),
                                          ("loss.objective", config.loss.objective, "simple"),
                                          ("model.learned_variance", config.model.learned_variance, False),
                                          ("model.num_classes", config.model.num_classes, 0),
                                          ("sde.prior", config.sde.prior, "standard")) if v != ok]
    if wrong:
        raise ValueError(f"config.family='sr3' needs sde.type='vp', model.name='unet', loss.continuous=True, "
                         f"loss.objective='simple', model.learned_variance=False, model.num_classes=0 and "
                         f"sde.prior='standard'; got {', '.join('config.' + w for w in wrong)}")


def super_resolve(run, low_res: torch.Tensor, sampler=None, steps: int | None = None, seed: int = 0, **kwargs):
    """High-resolution samples given low-resolution images [n, C, H/f, W/f] (f = config.sr3.factor); returns
    (x, nfe). Other keywords as in `Run.sample`."""
    f, (c, h, w) = run.config.sr3.factor, run.shape
    if not isinstance(low_res, torch.Tensor) or low_res.ndim != 4 or tuple(low_res.shape[1:]) != (c, h // f, w // f):
        raise ArgumentTypeError(f"low_res must be images [n, {c}, {h // f}, {w // f}] (the run's {h}x{w} images "
                                f"down-sampled by {f}), got {describe(low_res)}")
    condition = upsample(low_res.to(run.device), f)
    return run.sample(len(low_res), sampler, steps, seed, condition=condition, **kwargs)


def with_sde(run, sde):
    """This run under another VP SDE: a model conditioned on the noise level runs under an inference noise schedule
    that differs from training's, with no retraining. Returns a new Run sharing the model."""
    new = copy.copy(run)
    new.sde, new.score_fn = sde, run.family.score_fn(run.model, sde, run.config)
    return new


def sample_command(run, sampler, *, name: str, steps, n: int, seed: int = 0, batch_size=None, out=None, labels=None,
                   guidance=(0.0,), classifier=None, classifier_scale: float = 1.0, autoguide=None) -> str:
    """Super-resolve the first n held-out images; save them with their inputs and ground truth, and report PSNR,
    SSIM and consistency."""
    from ..metrics import restoration_metrics
    from ..plots import save_rows

    if labels is not None or classifier is not None or list(guidance) != [0.0] or autoguide is not None:
        raise ValueError("--labels, --guidance, --classifier and --autoguide are for runs that sample from noise; "
                         "this is an SR3 run")
    truth = run.data.eval_data[:n]
    if len(truth) < n:
        raise ValueError(f"--n {n}: an SR3 run super-resolves held-out images, and this run has {len(truth)}")
    f = run.config.sr3.factor
    low_res = downsample(truth, f)
    x, nfe, seconds = run.timed_sample(n, sampler, seed=seed, batch_size=batch_size, condition=upsample(low_res, f))
    path = npz_path(out, run.workdir, f"sr3_{name}_{steps}.npz")
    np.savez(path, samples=x.numpy(), low_res=low_res.numpy(), ground_truth=truth.numpy(), nfe=nfe,
             seconds=seconds, step=run.step)
    png = save_rows({f"input {low_res.shape[-2]}x{low_res.shape[-1]}": upsample(low_res, f), "SR3": x,
                     "ground truth": truth}, run, path.with_suffix(".png"),
                    title=f"SR3 x{f}, {name}, {nfe} NFE (step {run.step})")
    m = restoration_metrics(run.to_display(x), run.to_display(truth), lambda v: downsample(v, f),
                            run.to_display(low_res))  # on pixel values in [0, 1]
    return (f"{len(x)} super-resolved held-out images from step {run.step}, {nfe} NFE per batch, {seconds:.1f} s; "
            f"PSNR {m['psnr'][0]:.2f} ± {m['psnr'][1]:.2f} dB, SSIM {m['ssim'][0]:.3f}, consistency MSE "
            f"{m['consistency'][0]:.1e}: wrote {path}" + (f" and {png}" if png else ""))


SR3 = Family(
    name="sr3", description="SR3 super-resolution: a VP model of an image given its low-resolution version",
    data=build_data, process=lambda config: builders.build_sde(config.sde), model=build_model,
    score_fn=build_score_fn, loss_fn=build_loss_fn, sampler=builders.build_sampler, to_display=gaussian_display,
    evaluate=evaluate_likelihood, sample_command=sample_command, bits_per_dim=bits_per_dim,
    bits_per_dim_name="probability-flow ODE, given the low-resolution image", conditioning="image",
    condition=sr3_.condition_on, held_out_condition=lambda run, n: run.data.eval_conditions[:n],
    eval_inputs=lambda run, n: run.data.eval_conditions[:n],
    sample_inputs=lambda run, n: {"condition": run.data.eval_conditions[:n]},
    not_comparable="an SR3 run: compare measures unconditional sample quality; compare SR3's samplers with "
                   "examples/super_resolution_mnist.py (PSNR, SSIM, consistency per sampler)",
    config={"sr3": dict(
        factor=4,  # the network reads the image down-sampled by this factor (28 -> 7 with 4), up-sampled back
        norm=2,    # p of the loss ‖ε − ε_θ‖_p^p: 2 or 1
    )},
    rules={"sr3.factor": (lambda v: v >= 2, ">= 2"), "sr3.norm": (lambda v: v in (1, 2), "1 or 2")},
    check=check, methods={"super_resolve": super_resolve, "with_sde": with_sde},
    legacy=lambda saved: "sr3.factor > 0" if saved.get("sr3", {}).get("factor", 0) else "")
