"""A trained run, ready to sample and evaluate, without optimiser, DDP or training data.

    run = scoresde.load_run("runs/toy")                 # the newest intact checkpoint, on CUDA if available
    x, nfe = run.sample(1000, "pc", steps=500, seed=0)
    x, nfe = run.sample(1000, "dpm_solver", steps=20)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from . import families
from . import guidance as guidance_
from . import inverse
from ._utils import ArgumentTypeError, check_device, check_positive_int, describe, progress
from .config import from_json
from .prior import prior_from_state
from . import checkpoint as ckpt


VARIANCE_DATA = 500  # training samples a sampler that declares `needs_data` gets (Analytic-DPM's Γ_t)
DEQUANTIZE_STREAM = 1 << 23  # stream_generator key of the dequantisation noise (apart from training's streams)


@dataclass
class BitsPerDim:
    """Held-out bits/dim of a run, per sample, and what they are."""
    bpd: torch.Tensor  # [n], on the host, offset included
    nfe: int  # network evaluations, summed over batches
    dequantized: bool  # 8-bit data, uniformly dequantised: a bound on the discrete data's code length
    offset: float  # bits/dim added for the dequantisation (0 when not dequantised)
    description: str  # what was computed, for reports

    @property
    def mean(self) -> float:
        return self.bpd.mean().item()

    @property
    def se(self) -> float:
        return (self.bpd.std() / len(self.bpd) ** 0.5).item() if len(self.bpd) > 1 else float("nan")


def select_device(device) -> torch.device:
    """None or "auto": CUDA when available, else CPU; otherwise a device that exists here ("cpu", "cuda:1", ...)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return check_device(device)


class Run:
    """A model (the EMA weights) with its config and SDE: `score_fn` for any sampler, `sample`, held-out `data`."""

    def __init__(self, config, model: torch.nn.Module, *, shape, is_image: bool, centered: bool = True,
                 step: int = 0, device=None, workdir=None, checkpoint_path=None, data=None, prior=None):
        self.config = config  # the resolved run config
        self.device = select_device(device)
        self.model = model.to(self.device).eval()  # the EMA network
        self.shape = tuple(shape)  # per-sample data shape, e.g. (2,) or (1, 28, 28)
        self.is_image, self.centered = is_image, centered  # images in [-1, 1] (centered) or [0, 1]
        self.step = step  # training step of the weights
        self.workdir = Path(workdir) if workdir is not None else None
        self.checkpoint_path = checkpoint_path  # the file the weights came from
        self.family = families.get_family(config)  # what kind of model: its hooks build and evaluate it
        self.sde = self.family.process(config)  # the forward process (an SDE, or a chain of discrete states)
        self.prior = prior  # a data-measured prior (config.sde.prior='data', scoresde.prior), stored with the run
        if prior is not None:
            self.sde = self.sde.with_prior(prior)
        self.num_classes = config.model.num_classes  # > 0: class-conditional (or the classifier's classes)
        self.score_fn = (self.family.score_fn(self.model, self.sde, config) if self.family.can_sample
                         else None)  # what the samplers call
        if data is not None:
            self.__dict__["data"] = data  # the trainer passes the data it already built

    def __getattr__(self, name):
        """The methods the run's family adds (`Family.methods`), bound to the run."""
        family = self.__dict__.get("family")
        if family is None or name.startswith("_"):
            raise AttributeError(name)
        if name in family.methods:
            method = family.methods[name]
            return lambda *args, **kwargs: method(self, *args, **kwargs)
        owners = [f.name for f in families.FAMILIES.values() if name in f.methods]
        raise AttributeError(f"'Run' object has no attribute {name!r}" + (
            f": it is a method of {' and '.join(owners)} runs, and this is a {family.name} run" if owners else ""))

    def to_display(self, x: torch.Tensor) -> torch.Tensor:
        """Samples as pictures in [0, 1] (images) or unchanged (points)."""
        return self.family.to_display(self, x)

    @cached_property
    def data(self):
        """The run's data set (held-out samples in `.eval_data`); loaded on first use."""
        return self.family.data(self.config)

    def sampler(self, name: str | None = None, steps: int | None = None, **options):
        """A sampler by name (default: config.sampling.name and .steps) with the run's defaults."""
        sampler = self.family.sampler(self.config, name, steps, **{"progress": False, **options})
        if self.workdir is not None:  # grid="optimized": calibrated once per checkpoint, kept in WORKDIR/grids
            sampler.grid_cache = (Path(self.workdir) / "grids", {"checkpoint": str(self.checkpoint_path), "step": self.step})
        if sampler.needs_data and sampler.data is None:  # e.g. Analytic-DPM's E||s||^2
            x, y = self.data.train_batch(0, VARIANCE_DATA, self.config.training.seed)
            sampler.data = self.family.given(self.sde, y).whiten(x)  # samplers run on x̃ (x itself for N(0, I))
        return sampler

    @property
    def can_sample(self) -> bool:
        """Whether the run generates samples (a classifier run only guides another)."""
        return self.family.can_sample

    def _check_can_sample(self):
        if not self.can_sample:
            raise ValueError(f"{self.workdir or 'this run'} is a {self.family.name} run ({self.family.description}): "
                             f"it has no samples" + ("; use it to guide one (run.sample(..., classifier=this_run), "
                                                     "scoresde sample --classifier WORKDIR)" if self.family.guides else ""))

    def guided_score(self, labels=None, guidance: float = 0.0, classifier=None, classifier_scale: float = 1.0,
                     autoguide=None):
        """The score a sampler runs (scoresde.guidance.guided): unconditional (labels None), conditional (w = 0),
        classifier-free guided with w = guidance, and/or classifier guided (classifier: a classifier Run or
        a function (x, t) → logits). labels: one class or one per sample of the batch.
        autoguide: a weaker Run of the same data and SDE (a smaller network, or an earlier checkpoint of this one):
        guidance is then autoguidance's w, (1 + w) s − w s_bad, given the same labels (EDM2's w is 1 + w)."""
        self._check_can_sample()
        if autoguide is not None:
            return self._autoguided(labels, guidance, classifier, autoguide)
        if isinstance(classifier, Run):
            if not classifier.family.guides:
                raise ValueError(f"classifier must be a run that guides (config.family='classifier'), got a "
                                 f"{classifier.family.name} run from {classifier.workdir}")
            classifier = classifier.model
        sde = self.family.given(self.sde, labels)  # a per-class prior: the score of x under the labels' priors
        score_fn = self.score_fn if sde is self.sde else self.family.score_fn(self.model, sde, self.config)
        return guidance_.guided(score_fn, labels, guidance, classifier, classifier_scale)

    def _autoguided(self, labels, guidance, classifier, weak):
        if not isinstance(weak, Run):
            raise ArgumentTypeError(f"autoguide must be a Run (load_run(workdir, checkpoint=...)), got {describe(weak)}")
        if classifier is not None:
            raise ValueError("autoguide and classifier guidance are not combined; give one of them")
        weak._check_can_sample()
        for what, mine, theirs in (("data shape", self.shape, weak.shape),
                                   ("SDE (config.sde)", self.config.sde.to_dict(), weak.config.sde.to_dict()),
                                   ("classes (config.model.num_classes)", self.num_classes, weak.num_classes)):
            if mine != theirs:
                raise ValueError(f"autoguide must be a weaker model of the same data and process: its {what} is "
                                 f"{theirs}, this run's {mine}")
        if (self.family.conditioning == "image" or not self.family.continuous_density or self.prior is not None
                or weak.prior is not None):
            raise ValueError(f"autoguide needs two score-based runs of a continuous density with a standard prior and "
                             f"no image conditioning; this is a {self.family.name} run"
                             + (" with a data prior" if self.prior is not None or weak.prior is not None else ""))
        good = guidance_.guided(self.score_fn, labels)
        bad = guidance_.guided(weak.score_fn, labels)
        return guidance_.autoguided(good, bad, guidance)

    @torch.no_grad()
    def sample(self, n: int, sampler=None, steps: int | None = None, seed: int = 0, batch_size: int | None = None,
               progress_bar: bool = False, labels=None, guidance: float = 0.0, classifier=None,
               classifier_scale: float = 1.0, condition=None, autoguide=None, seeds=None, **options):
        """n samples from the model: returns (x, nfe), nfe per batch. `sampler` is a name or a built sampler.

        Batch b (starting at sample i) uses the seed seed + i, so a sample depends on (seed, batch_size) only.
        seeds (n integers, instead of seed): sample i draws all its noise from seeds[i] alone, as in EDM's
        generate.py, so it does not depend on which batch it falls in (only on kernels' round-off).
        labels (a class, or one per sample [n]), guidance (w; 0: conditional) and classifier, classifier_scale
        condition and guide the score (`guided_score`); autoguide (a weaker Run) makes guidance autoguidance's w
        (EDM2's w is 1 + w), with or without labels. nfe counts network calls; with classifier-free
        guidance (w ∉ {0, −1}) each is on a doubled batch. condition: for a family conditioned on images, one
        image per sample [n, *shape] (the family's methods may make them from other inputs).
        """
        self._check_can_sample()
        n = check_positive_int(n, "n")
        condition = self._check_condition(condition, n)
        batch_size = check_positive_int(batch_size or n, "batch_size")
        if sampler is None or isinstance(sampler, str):
            sampler = self.sampler(sampler, steps, **options)
        elif steps is not None or options:
            raise ValueError("give steps and sampler options only with a sampler name, not with a built sampler")
        if seeds is not None:
            seeds = list(seeds)
            if len(seeds) != n:
                raise ValueError(f"seeds must give one seed per sample: {len(seeds)} seeds for n={n}")
            if not getattr(sampler, "per_sample_seeds", False):
                raise ValueError(f"sampler {getattr(sampler, 'name', sampler)!r} does not take per-sample seeds; "
                                 f"the samplers of scoresde.sampling do")
        if labels is not None:  # the classes: the model's, or an unconditional model's classifier's
            net = classifier.model if isinstance(classifier, Run) else classifier
            classes = self.num_classes or getattr(net, "num_classes", None) or 0
            if classes or classifier is None:
                labels = guidance_.check_labels(labels, classes, "labels", allow_null=False)
            else:  # a plain classifier function: classifier_gradient checks the range against its logits
                labels = torch.as_tensor(labels).long()
            if labels.ndim == 1 and len(labels) != n:
                raise ValueError(f"labels must be one class or one per sample ({n}), got {len(labels)} labels")
        xs, nfe = [], 0
        for i in progress(range(0, n, batch_size), progress_bar and n > batch_size, desc="batches"):
            b = min(batch_size, n - i)
            noise = ({"generator": torch.Generator(device=self.device).manual_seed(seed + i)} if seeds is None
                     else {"seeds": seeds[i:i + b]})
            y = labels if labels is None or labels.ndim == 0 else labels[i:i + b]
            score = self.guided_score(y, guidance, classifier, classifier_scale, autoguide)
            if condition is not None:
                score = self.family.condition(score, condition[i:i + b])
            x, nfe = sampler(score, self.family.given(self.sde, y), (b, *self.shape), device=self.device, **noise)
            xs.append(x)
        return torch.cat(xs), nfe

    def _check_condition(self, condition, n: int):
        """The conditioning images: required by a family conditioned on images ([n, *shape], moved to the run's
        device), refused by the others."""
        if self.family.conditioning != "image":
            if condition is not None:
                raise ValueError(f"condition is for runs of a family conditioned on images; this {self.family.name} "
                                 f"run is not")
            return None
        if condition is None:
            raise ValueError(f"this {self.family.name} run needs condition=: one conditioning image per sample [{n}, "
                             f"{', '.join(map(str, self.shape))}]" + (
                                 f" (or use run.{' or run.'.join(self.family.methods)})" if self.family.methods else ""))
        if not isinstance(condition, torch.Tensor) or tuple(condition.shape) != (n, *self.shape):
            raise ArgumentTypeError(f"condition must be a tensor of images [{n}, {', '.join(map(str, self.shape))}], "
                                    f"got {describe(condition)}")
        return condition.to(self.device)

    def inpaint(self, y: torch.Tensor, mask: torch.Tensor, sampler=None, steps: int | None = None, seed: int = 0,
                resample: int = 1, jump: int = 1, **options):
        """scoresde.inverse.inpaint with this run's score and SDE: samples equal to y where mask = 1, (x, nfe).
        sampler: a name (with steps and options; default the run's) or a built one-step sampler."""
        self._check_can_sample()
        if sampler is None or isinstance(sampler, str):
            sampler = self.sampler(sampler, steps, **options)
        g = torch.Generator(device=self.device).manual_seed(seed)
        return inverse.inpaint(self.score_fn, self.sde, y.to(self.device), mask.to(self.device), sampler, resample,
                               jump, generator=g)

    def restore(self, y: torch.Tensor, operator, method: str = "ddrm", sigma_y: float = 0.0, sampler=None,
                steps: int | None = None, seed: int = 0, **options):
        """scoresde.inverse.solve with this run's score and SDE: x given y = A x + σ_y ε, (x, nfe).
        sampler: a name (default ancestral) with steps, or a built one; options: the method's own."""
        self._check_can_sample()
        if sampler is None or isinstance(sampler, str):
            sampler = self.sampler(sampler or "ancestral", steps)
        g = torch.Generator(device=self.device).manual_seed(seed)
        return inverse.solve(self.score_fn, self.sde, y.to(self.device), operator, method=method, sigma_y=sigma_y,
                             sampler=sampler, generator=g, shape=self.shape, **options)

    def timed_sample(self, n: int, sampler, seed: int = 0, batch_size: int | None = None, **guidance):
        """sample(), with the samples on the host and the wall time in seconds: (x, nfe, seconds)."""
        start = time.perf_counter()
        x, nfe = self.sample(n, sampler, seed=seed, batch_size=batch_size, **guidance)
        x = x.cpu()  # the copy to the host also waits for the device to finish
        return x, nfe, time.perf_counter() - start

    def bits_per_dim(self, n: int | None = None, seed: int = 0, dequantize: bool = True) -> BitsPerDim:
        """Bits/dim of the first n held-out samples (default config.eval.n_bpd) by the family's bits_per_dim.

        8-bit images under a continuous density are dequantised uniformly first, y = lo + (hi − lo)(u + U)/256,
        and uint8_bpd_offset is added: −log₂ P(u) ≤ E_U[−log₂ p(y)] + D (8 − log₂(hi − lo)), so the number
        bounds the code length of the 8-bit data and is never negative in expectation. dequantize=False gives
        the raw density of the scaled pixel values instead, which is not a likelihood of the data (it can
        be negative). Hutchinson probes use seed + i for the batch at i; the dequantisation noise its own stream.
        """
        from .data import stream_generator
        from .likelihood import dequantize as dequantize_uint8, uint8_bpd_offset

        data = self.data
        n = check_positive_int(n or self.config.eval.n_bpd, "n")
        quantized = self.family.continuous_density and data.eval_uint8 is not None
        offset = uint8_bpd_offset(data.data_range) if quantized and dequantize else 0.0
        labels = self.family.held_out_condition(self, n)  # labels, conditioning images, or None
        bpds, nfe, bs = [], 0, self.config.eval.batch_size
        for i in range(0, min(n, len(data.eval_data)), bs):
            if quantized and dequantize:
                x = dequantize_uint8(data.eval_uint8[i:min(i + bs, n)], stream_generator(seed, DEQUANTIZE_STREAM, i),
                                     data.data_range)
            else:
                x = data.eval_data[i:min(i + bs, n)]
            y = None if labels is None else labels[i:i + len(x)].to(self.device)
            bpd, k = self.family.bits_per_dim(self, x.to(self.device),
                                              torch.Generator(device=self.device).manual_seed(seed + i), y=y)
            bpds.append(bpd.cpu() + offset)
            nfe += k
        name = self.family.bits_per_dim_name
        if quantized and dequantize:
            lo, hi = data.data_range
            name += (f", 8-bit data dequantised uniformly; includes {offset:g} bits/dim for scaling the 256 levels "
                     f"to [{lo:g}, {hi:g}]")
        elif quantized:
            name += ", raw density of the scaled pixel values (not a likelihood of the 8-bit data)"
        return BitsPerDim(torch.cat(bpds), nfe, quantized and dequantize, offset, name)

    def eval_batches(self, n: int | None = None):
        """The first n held-out samples (all when None) in batches of config.eval.batch_size: (x, y), y what the
        family's loss is given (labels, conditioning images) or None."""
        x, y = self.data.eval_data[:n].to(self.device), self.family.eval_inputs(self, n)
        y = None if y is None else y.to(self.device)
        bs = self.config.eval.batch_size
        for i in range(0, len(x), bs):
            yield x[i:i + bs], None if y is None else y[i:i + bs]

    @torch.no_grad()
    def eval_loss(self, n: int | None = None) -> float:
        """The training loss of the model on held-out data, with noise fixed by the run's seed."""
        loss_fn = self.family.loss_fn(self.sde, self.config)
        g = torch.Generator(device=self.device).manual_seed(self.config.training.seed)
        total, count = 0.0, 0
        for x, y in self.eval_batches(n):
            total, count = total + loss_fn(self.model, x, g, y).item() * len(x), count + len(x)
        return total / count

    def evaluate(self) -> dict:
        """The held-out scalars the training loop logs (the family's monitor: eval_loss, a classifier's accuracy)."""
        return self.family.monitor(self)

    def __repr__(self):
        return (f"Run({self.workdir}, step {self.step}, {self.family.name} family, {self.config.model.name} model, "
                f"data {self.shape}, on {self.device})")


def load_run(workdir, device=None, checkpoint=None) -> Run:
    """Load a trained run for sampling and evaluation.

    workdir: a run's folder. device: None/"auto", "cpu", "cuda", ... checkpoint: None for the newest
    intact checkpoint (latest.pt, else the newest ckpt_<step>.pt, with a warning), a training step, or a path.
    """
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise FileNotFoundError(f"workdir {workdir} does not exist; train first: scoresde train --config ... "
                                f"--workdir {workdir}")
    device = select_device(device)
    if checkpoint is None:
        state, path = ckpt.load_latest(workdir / "checkpoints", device)
        if state is None:
            raise FileNotFoundError(f"no checkpoint in {workdir / 'checkpoints'}; train first: scoresde train "
                                    f"--config ... --workdir {workdir}")
    else:
        if isinstance(checkpoint, int) and not isinstance(checkpoint, bool):
            path = workdir / "checkpoints" / f"ckpt_{checkpoint}.pt"
        elif isinstance(checkpoint, (str, Path)):
            path = Path(checkpoint)
        else:
            raise TypeError(f"checkpoint must be None, a step (int) or a path, got {type(checkpoint).__name__}")
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        state = ckpt.load(path, device)
    config = from_json(state["config"])
    data = state["data"]
    if config.sde.prior == "data" and "prior" not in state:
        raise ValueError(f"{path} lacks the data prior that config.sde.prior='data' needs (checkpoint key 'prior')")
    prior = prior_from_state(state["prior"]) if "prior" in state else None
    model = families.get_family(config).model(config, tuple(data["shape"]))
    model.load_state_dict(state["ema"])
    return Run(config, model, shape=data["shape"], is_image=data["is_image"], centered=data["centered"],
               step=int(state["step"]), device=device, workdir=workdir, checkpoint_path=path, prior=prior)

