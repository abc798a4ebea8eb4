"""The training loop: one config, one workdir; logs, samples, atomic checkpoints, exact resume, DDP under torchrun.

Layout of a workdir:
    config.json            the resolved config of the run
    log.jsonl              one JSON object of scalars per logged step
    checkpoints/latest.pt  model, EMA, optimiser, step, RNG states and config; rewritten atomically
    checkpoints/ckpt_<step>.pt   periodic snapshots (the fallback when latest.pt is damaged)
    .lock                  held by the one process that trains the run
    samples/step_<step>.png      sample grids (images) or scatter plots (2-D data)
    tensorboard/           scalars, when tensorboard is installed
"""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

from .. import builders, checkpoint
from .._utils import progress
from ..config import from_json, to_json, validate
from ..data import stream_generator
from ..run import Run, select_device
from .ema import EMA


class Distributed:
    """Rank, world size and device under torchrun (RANK/WORLD_SIZE/LOCAL_RANK), or a single process."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device
        if self.world > 1:
            if device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def close(self):
        if self.world > 1:
            dist.destroy_process_group()


class Logger:
    """JSONL always; TensorBoard scalars when it is installed; rank 0 only."""

    def __init__(self, workdir: Path, enabled: bool):
        self.enabled, self.path, self.tb = enabled, workdir / "log.jsonl", None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(workdir / "tensorboard"))
            except ImportError:
                pass

    def log(self, step: int, **scalars):
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **scalars}) + "\n")
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)

    def close(self):
        if self.tb is not None:
            self.tb.close()


# What may change when a run is resumed: how long and where it trains, how often it logs, and how it samples and
# evaluates. Every other key (a section's name stands for all its keys) defines the run, including the keys of
# sections added later, so a new family's settings are protected without being listed here.
MAY_CHANGE_ON_RESUME = ("training.n_iters", "training.device", "training.mixed_precision", "training.ema_warmup",
                        "training.log_every", "training.eval_every", "training.sample_every", "training.save_every",
                        "training.snapshot_every", "sampling", "eval")


def run_defining(key: str) -> bool:
    """Whether a dotted config key defines the run (a change on resume is refused)."""
    return not any(key == k or key.startswith(k + ".") for k in MAY_CHANGE_ON_RESUME)


def _check_workdir_config(workdir: Path, config) -> None:
    """A workdir holds one run: resuming with a different run-defining config is refused."""
    saved = workdir / "config.json"
    if not saved.exists():
        return
    old, new = from_json(saved.read_text()).to_dict(), config.to_dict()
    diffs = [f"{s}.{k}: {old[s][k]!r} -> {new[s][k]!r}" for s in new for k in new[s]
             if old[s][k] != new[s][k] and run_defining(f"{s}.{k}")]
    if diffs:
        raise ValueError(f"{workdir} holds a run with a different config ({'; '.join(diffs)}); use a new --workdir, "
                         f"or keep these keys as they were (only {', '.join(MAY_CHANGE_ON_RESUME)} may change)")
    if old["optim"]["schedule"] == "cosine" and old["training"]["n_iters"] != new["training"]["n_iters"]:
        print(f"note: optim.schedule='cosine' reaches 0 at training.n_iters, which changed from "
              f"{old['training']['n_iters']} to {new['training']['n_iters']}: the learning rate jumps on resume")


def image_grid(x: torch.Tensor, min_size: int = 320, gap: int = 1) -> torch.Tensor:
    """Tile images [N, C, H, W] in [0, 1] into one picture [rows·(H + gap) − gap, cols·(W + gap) − gap(, C)], with
    `gap` white pixels between tiles (so digits do not run into stripes) and white where tiles are missing.

    Small grids are enlarged by an integer factor (nearest neighbour) to at least `min_size` pixels,
    so 8×8 digits are visible.
    """
    n, c, h, w = x.shape
    cols = int(n**0.5 + 0.999)
    rows = (n + cols - 1) // cols
    grid = torch.ones(rows * cols, c, h + gap, w + gap)
    grid[:n, :, :h, :w] = x
    grid = grid.reshape(rows, cols, c, h + gap, w + gap).permute(0, 3, 1, 4, 2)
    grid = grid.reshape(rows * (h + gap), cols * (w + gap), c)[:rows * (h + gap) - gap, :cols * (w + gap) - gap]
    scale = max(1, -(-min_size // max(grid.shape[:2])))
    return grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1).squeeze(-1)


def image_strip(x: torch.Tensor, gap: int = 1) -> torch.Tensor:
    """Images [k, C, H, W] side by side as one [C, H, k·(W + gap) − gap], with `gap` white columns between them."""
    k, c, h, w = x.shape
    strip = torch.ones(k, c, h, w + gap, dtype=x.dtype)
    strip[..., :w] = x
    return strip.permute(1, 2, 0, 3).reshape(c, h, k * (w + gap))[..., :k * (w + gap) - gap]


def save_samples(x: torch.Tensor, run: Run, path: Path) -> Path | None:
    """A PNG grid (images) or scatter plot (2-D points) of a run's samples; needs matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    x = run.to_display(x.detach().float().cpu())
    if run.is_image:
        plt.imsave(path, image_grid(x).numpy(), cmap="gray" if x.shape[1] == 1 else None, vmin=0, vmax=1)
    else:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5)
        lim = float(run.data.eval_data.abs().max()) * 1.2
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=path.stem)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
    return path


def save_guidance_grid(x: torch.Tensor, labels, ws, run: Run, path: Path, per_cell: int = 6,
                       note: str = "") -> Path | None:
    """A picture of samples x [L, W, n, ...]: a row per class, a column per guidance scale w (per_cell samples
    per cell; 2-D points: a scatter plot per cell); needs matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, cols = len(labels), len(ws)
    k = min(per_cell, x.shape[2])
    width = 0.55 * k if run.is_image else 2.2
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 0.6, (0.7 if run.is_image else 2.2) * rows + 0.5),
                             squeeze=False, layout="constrained")
    for i, y in enumerate(labels):
        for j, w in enumerate(ws):
            ax, cell = axes[i][j], run.to_display(x[i, j].detach().float().cpu())
            if run.is_image:
                strip = image_strip(cell[:k])  # [C, H, k·(W + 1) − 1]
                ax.imshow(strip.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray" if strip.shape[0] == 1 else None,
                          vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.scatter(cell[:, 0], cell[:, 1], s=1, alpha=0.4)
                lim = float(run.data.eval_data.abs().max()) * 1.2
                ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
            if i == 0:
                ax.set_title(f"w = {w:g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"class {y}", fontsize=9)
    fig.suptitle("rows: classes; columns: classifier-free guidance w (0: conditional)" + note, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def save_rows(rows: dict, run: Run, path: Path, title: str = "", per_row: int = 12) -> Path | None:
    """A picture with one labelled row of images per entry of rows {name: images [N, C, H, W]} (the first
    per_row of each; e.g. input | result | ground truth for super-resolution and inpainting); needs matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    k = min(per_row, *(len(x) for x in rows.values()))
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.6 * k + 1.2, 0.75 * len(rows) + 0.4), squeeze=False,
                             layout="constrained")
    for ax, (name, x) in zip(axes[:, 0], rows.items()):
        strip = image_strip(run.to_display(x[:k].detach().float().cpu()))  # [C, H, k·(W + 1) − 1]
        ax.imshow(strip.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray" if strip.shape[0] == 1 else None,
                  vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


class Trainer:
    """Builds everything from the config and runs (or resumes) training in `workdir`.

    Everything the run will need (data, SDE, model, loss, the sampler of config.sampling) is built here,
    before the first step, so a bad config fails at once rather than after hours of training.
    """

    def __init__(self, config, workdir: str, progress_bar: bool = True):
        self.config = validate(config)
        self.workdir = Path(workdir)
        self.dist = Distributed(select_device(config.training.device))
        self.device, t = self.dist.device, config.training
        if t.batch_size % self.dist.world:
            raise ValueError(f"config.training.batch_size={t.batch_size} must be divisible by the {self.dist.world} processes")
        self.family = builders.get_family(config)  # Gaussian SDEs or D3PM: what the config builds
        self.data = self.family.data(config)
        builders.check_labels(config, self.data)
        self.prior = builders.data_prior(config, self.data)  # PriorGrad's prior (None: N(0, I)), saved with the run
        self.sde = self.family.process(config)
        if self.prior is not None:
            self.sde = self.sde.with_prior(self.prior)
        torch.manual_seed(t.seed)  # the same initial weights on every rank
        self.model = self.family.model(config, self.data.shape).to(self.device)
        self.ema = EMA(self.model, t.ema_rate, warmup=t.ema_warmup)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.optim.lr, betas=(config.optim.beta1, config.optim.beta2),
                                          eps=config.optim.eps, weight_decay=config.optim.weight_decay)
        self.train_model = (torch.nn.parallel.DistributedDataParallel(self.model) if self.dist.world > 1 else self.model)
        self.loss_fn = self.family.loss_fn(self.sde, config)
        self.sampler = self.family.sampler(config, progress=False)  # also checks config.sampling now
        self.run = Run(config, self.ema.model, shape=self.data.shape, is_image=self.data.is_image,
                       centered=config.data.centered, device=self.device, workdir=self.workdir, data=self.data,
                       prior=self.prior)
        self.step, self.progress_bar = 0, progress_bar
        self.resumed_from = None  # (step, checkpoint path) when the run resumed
        self.ckpt_dir = self.workdir / "checkpoints"
        self.lock = None
        try:
            if self.dist.main:
                self.workdir.mkdir(parents=True, exist_ok=True)
                self.lock = checkpoint.WorkdirLock(self.workdir).acquire()  # one writer per run
                checkpoint.remove_stale_temporaries(self.workdir)
                _check_workdir_config(self.workdir, config)
                checkpoint.atomic_write_text(to_json(config), self.workdir / "config.json")
            self._restore()
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise
        self.logger = Logger(self.workdir, self.dist.main)

    def _restore(self):
        state, path = checkpoint.load_latest(self.ckpt_dir, self.device)
        if state is None:
            return
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"], state["ema_updates"])
        self.optimizer.load_state_dict(state["optimizer"])
        checkpoint.set_rng_state(state["rng"])
        self.step = self.run.step = state["step"]
        if hasattr(self.loss_fn, "load_state_dict"):  # e.g. the importance sampler's loss history
            self.loss_fn.load_state_dict(state.get("loss_state", {}))
        self.resumed_from = (self.step, path)

    def save(self, snapshot: bool = False):
        if not self.dist.main:
            return
        state = {"model": self.model.state_dict(), "ema": self.ema.state_dict(), "ema_updates": self.ema.num_updates,
                 "optimizer": self.optimizer.state_dict(), "step": self.step, "rng": checkpoint.rng_state(),
                 "config": to_json(self.config),
                 "data": {"shape": list(self.data.shape), "is_image": self.data.is_image,
                          "centered": bool(self.config.data.centered)}}
        if hasattr(self.loss_fn, "state_dict"):
            state["loss_state"] = self.loss_fn.state_dict()
        if self.prior is not None:
            state["prior"] = self.prior.state_dict()
        checkpoint.atomic_save(state, self.ckpt_dir / checkpoint.LATEST)
        if snapshot:
            checkpoint.atomic_save(state, self.ckpt_dir / f"ckpt_{self.step}.pt")

    def learning_rate(self, step: int) -> float:
        """The learning rate of optimiser step `step` (0-based): linear warm-up over optim.warmup steps, times
        ½(1 + cos(π step / n_iters)) with optim.schedule="cosine" (SGDR, Loshchilov & Hutter 2017, without restarts)."""
        o, n = self.config.optim, self.config.training.n_iters
        lr = o.lr * min(1.0, (step + 1) / o.warmup) if o.warmup > 0 else o.lr
        return lr * 0.5 * (1 + math.cos(math.pi * min(step, n) / n)) if o.schedule == "cosine" else lr

    def train_step(self) -> tuple[float, float]:
        """One optimiser step on this rank's slice of the global batch; returns (loss, grad norm)."""
        t, o = self.config.training, self.config.optim
        per_rank = t.batch_size // self.dist.world
        batch, labels = self.data.train_batch(self.step, t.batch_size, t.seed)
        mine = slice(self.dist.rank * per_rank, (self.dist.rank + 1) * per_rank)
        x0, y = batch[mine].to(self.device), None if labels is None else labels[mine].to(self.device)
        noise_gen = torch.Generator(device=self.device).manual_seed(
            int(torch.randint(2**62, (1,), generator=stream_generator(t.seed, self.step, 1 + self.dist.rank))))
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=stream_generator(t.seed, self.step, 1 << 23, self.dist.rank))))
        self.model.train()
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if t.mixed_precision and self.device.type == "cuda"
                    else nullcontext())
        with autocast:
            loss = self.loss_fn(self.train_model, x0, noise_gen, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), o.grad_clip if o.grad_clip > 0 else float("inf"))
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.step)
        self.optimizer.step()
        self.ema.update(self.model)
        self.step += 1
        self.run.step = self.step
        return loss.item(), grad_norm.item()

    def eval_loss(self) -> float:
        """Held-out loss of the EMA model with fixed noise."""
        return self.run.eval_loss()

    def sample(self, n: int | None = None, sampler=None, seed: int = 0):
        """Samples from the EMA model: returns (x, nfe). A conditional model draws the classes in turn (w = 0);
        SR3 super-resolves the first n held-out images."""
        n = n or self.config.sampling.n
        return self.run.sample(n, sampler or self.sampler, seed=seed, **self.family.sample_inputs(self.run, n))

    def train(self) -> Path:
        """Train up to config.training.n_iters; Ctrl-C saves latest.pt and re-raises KeyboardInterrupt."""
        t = self.config.training
        start, last_log = self.step, time.perf_counter()
        bar = progress(range(start, t.n_iters), self.progress_bar and self.dist.main, desc="train", total=t.n_iters - start)
        try:
            for _ in bar:
                loss, grad_norm = self.train_step()
                if hasattr(bar, "set_postfix") and (self.step % 10 == 0 or self.step == t.n_iters):
                    bar.set_postfix(loss=f"{loss:.4f}")
                if self.step % t.log_every == 0:
                    now = time.perf_counter()
                    self.logger.log(self.step, loss=loss, grad_norm=grad_norm, lr=self.optimizer.param_groups[0]["lr"],
                                    steps_per_s=t.log_every / (now - last_log))
                    last_log = now
                if self.step % t.eval_every == 0 or self.step == t.n_iters:
                    self.logger.log(self.step, **self.run.evaluate())
                if self.dist.main and self.run.can_sample and (self.step % t.sample_every == 0 or self.step == t.n_iters):
                    save_samples(self.sample()[0], self.run, self.workdir / "samples" / f"step_{self.step}.png")
                if self.step % t.save_every == 0 or self.step % t.snapshot_every == 0 or self.step == t.n_iters:
                    self.save(snapshot=self.step % t.snapshot_every == 0 or self.step == t.n_iters)
        except KeyboardInterrupt:
            self.save()
            raise
        finally:
            if hasattr(bar, "close"):
                bar.close()
            self.close()
        return self.workdir

    def close(self):
        """Flush the logs, leave the process group and release the workdir lock."""
        self.logger.close()
        self.dist.close()
        if self.lock is not None:
            self.lock.release()


def train(config, workdir: str, progress_bar: bool = True) -> Path:
    """Train (or resume) the run in `workdir` from `config`."""
    return Trainer(config, workdir, progress_bar).train()
