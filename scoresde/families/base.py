"""`Family`: what differs between kinds of diffusion model, declared in one object per kind.

The trainer, `Run`, the CLI, `compare` and the config read a run's family and call its hooks; none of them
names a family. A family lives in its own module (`families/gaussian.py`, `sr3.py`, `classifier.py`,
`d3pm.py`) and is listed once in `families.FAMILIES`; `config.family` picks it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

CONDITIONING = ("none", "labels", "image")  # what a family's samples may be conditioned on


# -- hooks several families share ---------------------------------------------------------------------------------

def standard_prior_only(config) -> None:
    """A family whose process has no data prior refuses PriorGrad's (config.sde.prior='data')."""
    if config.sde.prior != "standard" or config.sde.prior_per_class:
        raise ValueError(f"config.sde.prior='data' (PriorGrad) is for score models of config.family='gaussian', got "
                         f"config.family={config.family!r}; use config.sde.prior='standard'")


def _first(y, n):
    return None if y is None else y[:n]


def gaussian_display(run, x):
    """Images in [−1, 1] (centered) or [0, 1] as pictures in [0, 1]; points unchanged."""
    return ((x + 1) / 2 if run.centered else x).clamp(0, 1) if run.is_image else x


def loss_monitor(run) -> dict:
    """The held-out training loss, with noise fixed by the run's seed."""
    return {"eval_loss": run.eval_loss()}


def evaluate_likelihood(run, n=None, seed: int = 0, dequantize: bool = True, log=None, bound=None) -> dict:
    """Held-out loss and bits/dim of the family's bits_per_dim, with bound(run, x, seed, log) → {name: terms}
    (a discrete variational bound) beside it when given."""
    log = log or (lambda line: None)
    n = n or run.config.eval.n_bpd
    cost = (": an adaptive solve whose cost grows with the model's stiffness, often slowest for a briefly trained "
            "model" if run.family.continuous_density else "")  # an ODE likelihood; a discrete bound costs T calls
    log(f"bits/dim of {n} held-out samples ({run.family.bits_per_dim_name}){cost} ...")
    start = time.perf_counter()
    b = run.bits_per_dim(n, seed, dequantize=dequantize)
    bpd_seconds = time.perf_counter() - start
    result = {"step": run.step, "eval_loss": run.eval_loss(), "bits_per_dim": b.mean, "bits_per_dim_se": b.se,
              "bits_per_dim_kind": b.description, "dequantized": b.dequantized, "bpd_offset": b.offset,
              "n": len(b.bpd), "nfe": b.nfe, "bpd_seconds": bpd_seconds}
    if bound is not None:
        log(f"  {b.nfe} NFE, {bpd_seconds:.0f} s; now the discrete variational bound ({run.sde.N} model calls "
            f"on the {n} samples) ...")
        start = time.perf_counter()
        result.update(discrete=bound(run, run.data.eval_data[:n].to(run.device), seed, log),
                      discrete_seconds=time.perf_counter() - start)
    return result


def report_likelihood(result: dict) -> list[str]:
    lines = [f"step {result['step']}: held-out loss {result['eval_loss']:.4f}, {result['bits_per_dim']:.3f} ± "
             f"{result['bits_per_dim_se']:.3f} bits/dim ({result['bits_per_dim_kind']}) on {result['n']} held-out "
             f"samples, {result['nfe']} NFE, {result['bpd_seconds']:.0f} s"]
    for variance, r in result.get("discrete", {}).items():
        lines.append(f"  discrete variational bound, σ² = {variance}: {r['bpd']:.3f} ± {r['bpd_se']:.3f} bits/dim "
                     f"(L_T {r['prior_bpd']:.2g}, Σ L_t-1 {r['kl_bpd']:.3f}, L_0 {r['decoder_bpd']:.3f})")
    return lines


def npz_path(out, workdir, default_name: str) -> Path:
    """out, or WORKDIR/samples/<default_name>, ending in .npz as np.savez writes it (so the true name is
    reported), with its folder created."""
    out = Path(out or Path(workdir) / "samples" / default_name)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def sample_files(run, sampler, *, name: str, steps, n: int, seed: int = 0, batch_size: int | None = None, out=None,
                 labels=None, guidance=(0.0,), classifier=None, classifier_scale: float = 1.0, autoguide=None) -> str:
    """Samples to WORKDIR/samples/<name>_<steps>.npz and a picture beside it; with several labels or guidance
    scales, a grid (a row per class, a column per w). autoguide: a weaker Run; guidance is then autoguidance's w,
    with or without labels. Returns the line the CLI prints."""
    from ..guidance import describe_cost
    from ..plots import save_samples

    ws = list(guidance)
    guide = {"classifier": classifier, "classifier_scale": classifier_scale, "autoguide": autoguide}
    if labels is None and autoguide is None and (ws != [0.0] or classifier is not None):
        raise ValueError("--guidance and --classifier need --labels (which classes to sample), or --autoguide")
    if len(ws) > 1 or (labels is not None and len(labels) > 1):
        return _sample_grid(run, sampler, name, steps, n, seed, batch_size, out, labels or [None], ws, guide)
    guide.update(labels=None if labels is None else labels[0], guidance=ws[0])
    if labels is not None:
        name += f"_y{labels[0]}"
    if labels is not None or autoguide is not None:
        name += f"_{'auto' if autoguide is not None else ''}w{ws[0]:g}"
    x, nfe, seconds = run.timed_sample(n, sampler, seed=seed, batch_size=batch_size, **guide)
    cost = describe_cost(run.guided_score(**guide))
    path = npz_path(out, run.workdir, f"{name}_{steps}.npz")
    replaced = " (replacing the earlier files of that name; --out PATH writes elsewhere)" if path.exists() else ""
    np.savez(path, samples=x.numpy(), nfe=nfe, seconds=seconds, step=run.step)
    png = save_samples(x[:64] if run.is_image else x, run, path.with_suffix(".png"))
    return (f"{len(x)} samples from step {run.step}, {nfe} NFE per batch{cost}, {seconds:.1f} s: wrote {path}"
            + (f" and {png}" if png else "") + replaced)


def _sample_grid(run, sampler, name, steps, n, seed, batch_size, out, labels, ws, guide) -> str:
    """n samples per (class, w), the same seed in every cell, and a picture with a row per class and a column per w."""
    from ..guidance import describe_cost
    from ..plots import save_guidance_grid

    xs, start = [], time.perf_counter()
    for y in labels:
        for w in ws:
            x, nfe, _ = run.timed_sample(n, sampler, seed=seed, batch_size=batch_size, labels=y, guidance=w, **guide)
            xs.append(x)
    seconds = time.perf_counter() - start
    x = torch.stack(xs).reshape(len(labels), len(ws), *xs[0].shape)
    path = npz_path(out, run.workdir, f"{name}_{steps}_grid.npz")
    np.savez(path, samples=x.numpy(), labels=np.array([] if labels == [None] else labels, dtype=np.int64),
             guidance=np.array(ws), step=run.step, seconds=seconds)
    note = f"; classifier guidance, scale {guide['classifier_scale']:g}" if guide["classifier"] is not None else ""
    columns = ("autoguidance w ((1 + w) s − w s_weak; 0: the model alone; EDM2's w is 1 + w)"
               if guide["autoguide"] is not None else "classifier-free guidance w (0: conditional)")
    png = save_guidance_grid(x, labels, ws, run, path.with_suffix(".png"), note=note, columns=columns)
    costliest = max(ws, key=lambda w: w not in (0, -1))  # a w that doubles the batch, if any
    cost = describe_cost(run.guided_score(labels[0], costliest, **guide))
    classes = "" if labels == [None] else f"{len(labels)} classes x "
    return (f"{classes}{len(ws)} guidance scales x {n} samples from step {run.step}, {nfe} NFE per "
            f"batch{cost}" + (" where w is not 0 or -1" if "doubled" in cost and len(ws) > 1 else "")
            + f", {seconds:.1f} s: wrote {path}" + (f" and {png}" if png else ""))


# -- the family ----------------------------------------------------------------------------------------------------

def _no_check(config) -> None:
    return None


def _not_legacy(saved: dict) -> str:
    return ""


@dataclass(frozen=True)
class Family:
    """The hooks through which the trainer, `Run`, the CLI and the config build, sample and evaluate one kind of
    diffusion model, and the facts they read about it."""
    name: str               # its config.family value
    description: str        # one line, for listings and errors
    data: Callable          # config → data (train_batch, eval_data, shape, is_image)
    process: Callable       # config → the forward process that losses and samplers take (an SDE, a D3PM chain)
    model: Callable         # (config, per-sample data shape) → network
    score_fn: Callable      # (model, process, config) → the function samplers call; None for a model that only guides
    loss_fn: Callable       # (process, config) → loss_fn(model, x0, generator=None, y=None)
    sampler: Callable       # (config, name, steps, **options) → sampler(fn, process, shape, generator=, device=)
    to_display: Callable    # (run, x) → pictures in [0, 1] (points unchanged)
    evaluate: Callable = evaluate_likelihood  # (run, n=None, seed=0, dequantize=True, log=None) → {name: value}
    report: Callable = report_likelihood  # a result of evaluate → the lines `scoresde eval` prints
    sample_command: Callable = sample_files  # (run, sampler, **plain CLI values) → writes files; returns one line
    monitor: Callable = loss_monitor  # run → the held-out scalars the training loop logs every eval_every steps
    bits_per_dim: Callable | None = None  # (run, x, generator, y=None) → (bits/dim [B], NFE); None: no likelihood
    bits_per_dim_name: str = "probability-flow ODE"  # what bits_per_dim computes, for reports
    conditioning: str = "labels"  # "none", "labels" (optional class labels) or "image" (one image per sample, required)
    condition: Callable | None = None  # (score, conditioning images of a batch) → score, for conditioning "image"
    can_sample: bool = True  # False: the network does not generate (a noise-aware classifier only guides others)
    guides: bool = False     # True: a run of this family can guide another run's score (classifier guidance)
    given: Callable = lambda process, y: process  # (process, labels) → the process of a batch (a per-class prior)
    prior: Callable = lambda config, data: None  # (config, data) → a data-measured prior saved with the run, or None
    continuous_density: bool = True  # bits_per_dim is of a density over real x: 8-bit data are dequantised first
    held_out_condition: Callable = lambda run, n: None  # (run, n) → what bits/dim conditions the held-out x on
    eval_inputs: Callable = lambda run, n: _first(run.data.eval_labels, n)  # (run, n) → the held-out loss's y, or None
    sample_inputs: Callable = lambda run, n: {}  # (run, n) → Run.sample keywords for samples during training
    not_comparable: str = ""  # why `scoresde compare` (unconditional sample quality) does not apply; "" where it does
    config: dict = field(default_factory=dict)   # the config sections it adds: {section: {key: default}}
    choices: dict = field(default_factory=dict)  # dotted key of its sections → the accepted values
    rules: dict = field(default_factory=dict)    # dotted key → (test, what is accepted), as config.RULES
    check: Callable = _no_check   # config → None, or a ValueError naming the key: checks that need the whole config
    may_change: tuple = ()  # keys of its sections that may change when a run resumes (every other key defines it)
    methods: dict = field(default_factory=dict)  # name → fn(run, ...): methods its runs have (run.super_resolve)
    legacy: Callable = _not_legacy  # a saved config (dict) without `family` → why it is this family's, or ""

    def __post_init__(self):
        if self.conditioning not in CONDITIONING:
            raise ValueError(f"Family {self.name!r}: conditioning must be one of {list(CONDITIONING)}, got "
                             f"{self.conditioning!r}")
        if (self.conditioning == "image") != (self.condition is not None):
            raise ValueError(f"Family {self.name!r}: conditioning 'image' needs condition (and only it takes one)")
