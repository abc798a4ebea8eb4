"""A trained run, ready to sample and evaluate, without optimiser, DDP or training data.

    run = scoresde.load_run("runs/toy")                 # the newest intact checkpoint, on CUDA if available
    x, nfe = run.sample(1000, "pc", steps=500, seed=0)
    x, nfe = run.sample(1000, "dpm_solver", steps=20)
"""
from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path

import torch

from . import builders
from ._utils import check_device, check_positive_int, progress
from .config import from_json
from . import checkpoint as ckpt


def select_device(device) -> torch.device:
    """None or "auto": CUDA when available, else CPU; otherwise a device that exists here ("cpu", "cuda:1", ...)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return check_device(device)


class Run:
    """A model (the EMA weights) with its config and SDE: `score_fn` for any sampler, `sample`, held-out `data`."""

    def __init__(self, config, model: torch.nn.Module, *, shape, is_image: bool, centered: bool = True,
                 step: int = 0, device=None, workdir=None, checkpoint_path=None, data=None):
        self.config = config  # the resolved run config
        self.device = select_device(device)
        self.model = model.to(self.device).eval()  # the EMA network
        self.shape = tuple(shape)  # per-sample data shape, e.g. (2,) or (1, 28, 28)
        self.is_image, self.centered = is_image, centered  # images in [-1, 1] (centered) or [0, 1]
        self.step = step  # training step of the weights
        self.workdir = Path(workdir) if workdir is not None else None
        self.checkpoint_path = checkpoint_path  # the file the weights came from
        self.family = builders.get_family(config)  # Gaussian SDEs or D3PM
        self.sde = self.family.process(config)  # the forward process (an SDE or a D3PM chain)
        self.score_fn = self.family.score_fn(self.model, self.sde, config)  # what the samplers call
        if data is not None:
            self.__dict__["data"] = data  # the trainer passes the data it already built

    def to_display(self, x: torch.Tensor) -> torch.Tensor:
        """Samples as pictures in [0, 1] (images) or unchanged (points)."""
        return self.family.to_display(self, x)

    @cached_property
    def data(self):
        """The run's data set (held-out samples in `.eval_data`); loaded on first use."""
        return self.family.data(self.config)

    def sampler(self, name: str | None = None, steps: int | None = None, **options):
        """A sampler by name (default: config.sampling.name and .steps) with the run's defaults."""
        return self.family.sampler(self.config, name, steps, **{"progress": False, **options})

    @torch.no_grad()
    def sample(self, n: int, sampler=None, steps: int | None = None, seed: int = 0, batch_size: int | None = None,
               progress_bar: bool = False, **options):
        """n samples from the model: returns (x, nfe), nfe per batch. `sampler` is a name or a built sampler.

        Batch b (starting at sample i) uses the seed seed + i, so a sample depends on (seed, batch_size) only.
        """
        n = check_positive_int(n, "n")
        batch_size = check_positive_int(batch_size or n, "batch_size")
        if sampler is None or isinstance(sampler, str):
            sampler = self.sampler(sampler, steps, **options)
        elif steps is not None or options:
            raise ValueError("give steps and sampler options only with a sampler name, not with a built sampler")
        xs, nfe = [], 0
        for i in progress(range(0, n, batch_size), progress_bar and n > batch_size, desc="batches"):
            g = torch.Generator(device=self.device).manual_seed(seed + i)
            x, nfe = sampler(self.score_fn, self.sde, (min(batch_size, n - i), *self.shape), generator=g,
                             device=self.device)
            xs.append(x)
        return torch.cat(xs), nfe

    def timed_sample(self, n: int, sampler, seed: int = 0, batch_size: int | None = None):
        """sample(), with the samples on the host and the wall time in seconds: (x, nfe, seconds)."""
        start = time.perf_counter()
        x, nfe = self.sample(n, sampler, seed=seed, batch_size=batch_size)
        x = x.cpu()  # the copy to the host also waits for the device to finish
        return x, nfe, time.perf_counter() - start

    @torch.no_grad()
    def eval_loss(self, n: int | None = None) -> float:
        """The training loss of the model on held-out data, with noise fixed by the run's seed."""
        loss_fn = self.family.loss_fn(self.sde, self.config)
        g = torch.Generator(device=self.device).manual_seed(self.config.training.seed)
        x = self.data.eval_data[:n].to(self.device)
        bs = self.config.eval.batch_size
        losses = [loss_fn(self.model, x[i:i + bs], g).item() * len(x[i:i + bs]) for i in range(0, len(x), bs)]
        return sum(losses) / len(x)

    def __repr__(self):
        return (f"Run({self.workdir}, step {self.step}, {self.config.sde.type} SDE, {self.config.model.name} model, "
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
    model = builders.get_family(config).model(config, tuple(data["shape"]))
    model.load_state_dict(state["ema"])
    return Run(config, model, shape=data["shape"], is_image=data["is_image"], centered=data["centered"],
               step=int(state["step"]), device=device, workdir=workdir, checkpoint_path=path)

