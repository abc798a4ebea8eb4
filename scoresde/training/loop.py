"""The training loop: one config, one workdir; logs, samples, atomic checkpoints, exact resume, DDP under torchrun.

Layout of a workdir:
    config.json            the resolved config of the run
    log.jsonl              one JSON object of scalars per logged step
    checkpoints/latest.pt  model, EMA, optimiser, step, RNG states and config; rewritten atomically
    checkpoints/ckpt_<step>.pt   periodic snapshots (the fallback when latest.pt is damaged)
    .lock                  held by the one process that trains the run
    samples/step_<step>.png      sample grids (images) or scatter plots (2-D data)
    ema/snapshot_<step>.pt       post-hoc EMA snapshots (training.ema_sigma_rels; scoresde.posthoc_ema)
    tensorboard/           scalars, when tensorboard is installed
"""
from __future__ import annotations

import json
import math
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from .. import builders, checkpoint, families
from ..distributed import Distributed
from ..models import activation_checkpointing
from .._utils import progress
from ..config import _get, _keys, from_json, to_json, validate
from ..data import stream_generator
from ..plots import save_samples
from ..posthoc_ema import PowerEMA
from ..run import Run, select_device
from .ema import EMA


class Preempted(Exception):
    """Training stopped on SIGTERM after finishing a step and saving it; rerunning the same command resumes."""

    def __init__(self, step: int, path: Path):
        super().__init__(f"stopped by SIGTERM at step {step}; saved {path}")
        self.step, self.path = step, path


class NonFiniteTraining(RuntimeError):
    """Too many steps in a row had a non-finite gradient (training.max_nonfinite)."""


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


def _check_workdir_config(workdir: Path, config) -> None:
    """A workdir holds one run: resuming with a different run-defining config is refused."""
    saved = workdir / "config.json"
    if not saved.exists():
        return
    old = from_json(saved.read_text())
    changed = [k for k in _keys(config.to_dict()) if _get(old, k) != _get(config, k)]
    diffs = [f"{k}: {_get(old, k)!r} -> {_get(config, k)!r}" for k in changed if families.run_defining(config, k)]
    if diffs:
        may_change = families.MAY_CHANGE_ON_RESUME + tuple(families.get_family(config).may_change)
        raise ValueError(f"{workdir} holds a run with a different config ({'; '.join(diffs)}); use a new --workdir, "
                         f"or keep these keys as they were (only {', '.join(may_change)} may change)")
    if old.optim.schedule == "cosine" and old.training.n_iters != config.training.n_iters:
        print(f"note: optim.schedule='cosine' reaches 0 at training.n_iters, which changed from "
              f"{old.training.n_iters} to {config.training.n_iters}: the learning rate jumps on resume")


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
        self.family = families.get_family(config)  # what kind of model the config builds
        self.data = self.family.data(config)
        builders.check_labels(config, self.data)
        if config.model.sigma_data_from_data:  # EDM's σ_d, measured once and saved in config.json with the run
            config.model.sigma_data = builders.estimate_sigma_data(self.data, t.seed)
        self.prior = self.family.prior(config, self.data)  # PriorGrad's prior (None: N(0, I)), saved with the run
        self.sde = self.family.process(config)
        if self.prior is not None:
            self.sde = self.sde.with_prior(self.prior)
        torch.manual_seed(t.seed)  # the same initial weights on every rank
        self.model = self.family.model(config, self.data.shape).to(self.device)
        self.ema = EMA(self.model, t.ema_rate, warmup=t.ema_warmup)
        self.power_ema = PowerEMA(self.model, t.ema_sigma_rels) if t.ema_sigma_rels else None  # post-hoc EMA
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.optim.lr, betas=(config.optim.beta1, config.optim.beta2),
                                          eps=config.optim.eps, weight_decay=config.optim.weight_decay)
        self._scale_features(t)
        self.loss_fn = self.family.loss_fn(self.sde, config)
        self.sampler = self.family.sampler(config, progress=False)  # also checks config.sampling now
        self.run = Run(config, self.ema.model, shape=self.data.shape, is_image=self.data.is_image,
                       centered=config.data.centered, device=self.device, workdir=self.workdir, data=self.data,
                       prior=self.prior)
        self.step, self.progress_bar = 0, progress_bar
        self.nonfinite, self.nonfinite_in_a_row = 0, 0  # steps skipped for a non-finite gradient: in all, in a row
        self.stop_requested = False  # set by SIGTERM during train()
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

    def _scale_features(self, t) -> None:
        """Gradient accumulation, activation checkpointing, mixed precision, channels-last and compile, checked and
        set up before the first step (the EMA copies were made first, from the plain model)."""
        per_rank = t.batch_size // self.dist.world
        if t.batch_per_device and per_rank % t.batch_per_device:
            raise ValueError(f"config.training.batch_per_device={t.batch_per_device} must divide the batch of each of "
                             f"the {self.dist.world} process(es), training.batch_size / processes = {per_rank}")
        self.micro_batches = per_rank // t.batch_per_device if t.batch_per_device else 1
        if t.channels_last and not self.data.is_image:
            raise ValueError(f"config.training.channels_last=True is a memory format for image batches; "
                             f"config.data.dataset={self.config.data.dataset!r} holds points")
        if t.checkpoint_activations:
            activation_checkpointing.enable(self.model)
        self.precision = t.mixed_precision if self.device.type == "cuda" else "none"
        if self.precision != t.mixed_precision and self.dist.main:
            print(f"note: config.training.mixed_precision={t.mixed_precision!r} applies on CUDA; this run trains in "
                  f"float32 on {self.device}")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")  # dynamic loss scale
        if t.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.ddp = torch.nn.parallel.DistributedDataParallel(self.model) if self.dist.world > 1 else None
        self.train_model = self.model if self.ddp is None else self.ddp
        if t.compile:
            self.train_model = torch.compile(self.train_model)

    def autocast(self):
        """The autocast context of config.training.mixed_precision (float32: none)."""
        if self.precision == "none":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.precision == "bf16" else torch.float16)

    def _restore(self):
        state, path = checkpoint.load_latest(self.ckpt_dir, self.device)
        if state is None:
            return
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"], state["ema_updates"])
        if self.power_ema is not None:
            if "power_ema" not in state and "imported" not in state:
                raise ValueError(f"{path} has no post-hoc EMA profiles, but config.training.ema_sigma_rels is set: the "
                                 f"profiles must be tracked from step 1; start a new --workdir")
            if "power_ema" in state:
                self.power_ema.load_state_dict(state["power_ema"])
        if "imported" in state:  # published weights (scoresde import): fine-tuning starts a fresh optimiser
            print(f"fine-tuning the weights imported from {state['imported']['file']} with a fresh optimiser")
        else:
            self.optimizer.load_state_dict(state["optimizer"])
            checkpoint.set_rng_state(state["rng"])
            if "grad_scaler" in state and self.scaler.is_enabled():
                self.scaler.load_state_dict(state["grad_scaler"])
            self.nonfinite = state.get("nonfinite", 0)
        self.step = self.run.step = state["step"]
        if hasattr(self.loss_fn, "load_state_dict"):  # e.g. the importance sampler's loss history
            self.loss_fn.load_state_dict(state.get("loss_state", {}))
        self.resumed_from = (self.step, path)

    def save(self, snapshot: bool = False):
        """Write latest.pt (and ckpt_<step>.pt with snapshot=True) atomically, on rank 0; never non-finite weights."""
        if not self.dist.main:
            return
        for name, module in (("model", self.model), ("EMA", self.ema.model)):
            bad = [k for k, v in module.state_dict().items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
            if bad:
                raise NonFiniteTraining(f"refusing to save step {self.step}: the {name} weights {bad[0]} (and "
                                        f"{len(bad) - 1} more) are not finite; {self.ckpt_dir / checkpoint.LATEST} "
                                        f"keeps the last finite state")
        state = {"model": self.model.state_dict(), "ema": self.ema.state_dict(), "ema_updates": self.ema.num_updates,
                 "optimizer": self.optimizer.state_dict(), "step": self.step, "rng": checkpoint.rng_state(),
                 "config": to_json(self.config),
                 "data": {"shape": list(self.data.shape), "is_image": self.data.is_image,
                          "centered": bool(self.config.data.centered)}}
        if self.power_ema is not None:
            state["power_ema"] = self.power_ema.state_dict()
        if self.scaler.is_enabled():
            state["grad_scaler"] = self.scaler.state_dict()
        state["nonfinite"] = self.nonfinite
        if hasattr(self.loss_fn, "state_dict"):
            state["loss_state"] = self.loss_fn.state_dict()
        if self.prior is not None:
            state["prior"] = self.prior.state_dict()
        checkpoint.atomic_save(state, self.ckpt_dir / checkpoint.LATEST)
        if snapshot:
            checkpoint.atomic_save(state, self.ckpt_dir / f"ckpt_{self.step}.pt")

    def posthoc_ema_cost(self) -> str:
        """'' or a line on what post-hoc EMA's snapshots cost on disk over the run."""
        if self.power_ema is None:
            return ""
        t = self.config.training
        each = self.power_ema.snapshot_bytes()
        count = t.n_iters // t.ema_snapshot_every + (t.n_iters % t.ema_snapshot_every > 0)
        return (f"post-hoc EMA: σ_rel {', '.join(f'{s:g}' for s in self.power_ema.sigma_rels)} tracked; a snapshot every "
                f"{t.ema_snapshot_every} steps to {self.workdir / 'ema'}: {each / 2**20:.1f} MiB each, "
                f"{count} snapshots, {count * each / 2**20:.1f} MiB over {t.n_iters} steps")

    def learning_rate(self, step: int) -> float:
        """The learning rate of optimiser step `step` (0-based): linear warm-up over optim.warmup steps, times
        ½(1 + cos(π step / n_iters)) with optim.schedule="cosine" (SGDR, Loshchilov & Hutter 2017, without restarts)."""
        o, n = self.config.optim, self.config.training.n_iters
        lr = o.lr * min(1.0, (step + 1) / o.warmup) if o.warmup > 0 else o.lr
        return lr * 0.5 * (1 + math.cos(math.pi * min(step, n) / n)) if o.schedule == "cosine" else lr

    def train_step(self) -> tuple[float, float]:
        """One optimiser step on this rank's slice of the global batch; returns (loss, grad norm).

        With training.batch_per_device the slice is cut into micro-batches whose gradients add up (each loss
        divided by their number) before one optimiser step; DDP averages over ranks only on the last one. The noise
        of global micro-batch g = rank · micro-batches + i comes from its own stream, so G ranks with k micro-batches
        each see exactly the samples and noise of one process with G·k. A step with a non-finite gradient norm is
        skipped: no optimiser or EMA update, counted in self.nonfinite."""
        t, o = self.config.training, self.config.optim
        per_rank, k = t.batch_size // self.dist.world, self.micro_batches
        size = per_rank // k
        batch, labels = self.data.train_batch(self.step, t.batch_size, t.seed)
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=stream_generator(t.seed, self.step, 1 << 23, self.dist.rank))))
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i in range(k):
            g = self.dist.rank * k + i  # the global micro-batch (the rank itself without accumulation)
            x0 = batch[g * size:(g + 1) * size].to(self.device)
            if t.channels_last:
                x0 = x0.contiguous(memory_format=torch.channels_last)
            y = None if labels is None else labels[g * size:(g + 1) * size].to(self.device)
            noise_gen = torch.Generator(device=self.device).manual_seed(
                int(torch.randint(2**62, (1,), generator=stream_generator(t.seed, self.step, 1 + g))))
            last = i == k - 1
            with (self.ddp.no_sync() if self.ddp is not None and not last else nullcontext()):
                with self.autocast():
                    loss = self.loss_fn(self.train_model, x0, noise_gen, y)
                self.scaler.scale(loss / k if k > 1 else loss).backward()
            total = total + loss.detach().float()
        loss = total / k
        self.scaler.unscale_(self.optimizer)  # the true gradients (a no-op unless fp16)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), o.grad_clip if o.grad_clip > 0 else float("inf"))
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.step)
        finite = bool(torch.isfinite(grad_norm))
        if self.scaler.is_enabled():
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)  # skipped by the scaler itself when a gradient overflowed
            self.scaler.update()
        elif finite:
            self.optimizer.step()
        if finite:
            self.ema.update(self.model)
            if self.power_ema is not None:
                self.power_ema.update(self.model)
            self.nonfinite_in_a_row = 0
        else:
            self.nonfinite += 1
            # under fp16 an overflow while the loss scale is still large is the scaler calibrating itself, not
            # divergence: only overflows at a scale of 1 or less count towards training.max_nonfinite
            if not self.scaler.is_enabled() or scale <= 1.0:
                self.nonfinite_in_a_row += 1
        self.step += 1
        self.run.step = self.step
        return loss.item(), grad_norm.item()

    def eval_loss(self) -> float:
        """Held-out loss of the EMA model with fixed noise."""
        return self.run.eval_loss()

    def sample(self, n: int | None = None, sampler=None, seed: int = 0):
        """Samples from the EMA model: returns (x, nfe). A conditional model draws the classes in turn (w = 0);
        the family's sample_inputs give what else a sample needs (an image condition)."""
        n = n or self.config.sampling.n
        return self.run.sample(n, sampler or self.sampler, seed=seed, **self.family.sample_inputs(self.run, n))

    def _on_sigterm(self, signum, frame):
        self.stop_requested = True

    def train(self) -> Path:
        """Train up to config.training.n_iters. Ctrl-C saves latest.pt and re-raises KeyboardInterrupt; SIGTERM
        finishes the step, saves latest.pt and raises Preempted (all ranks stop at the same step)."""
        t = self.config.training
        start, last_log = self.step, time.perf_counter()
        bar = progress(range(start, t.n_iters), self.progress_bar and self.dist.main, desc="train", total=t.n_iters - start)
        previous = None
        if threading.current_thread() is threading.main_thread():  # only the main thread may handle signals
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            for _ in bar:
                skipped = self.nonfinite
                loss, grad_norm = self.train_step()
                if self.nonfinite > skipped:
                    self.logger.log(self.step, nonfinite=self.nonfinite, grad_norm=grad_norm)
                    if self.dist.main and self.nonfinite_in_a_row:  # fp16 loss-scale calibration is only logged
                        print(f"warning: step {self.step}: the gradient is not finite (norm {grad_norm}); the step "
                              f"was skipped ({self.nonfinite} so far, {self.nonfinite_in_a_row} in a row)")
                if self.nonfinite_in_a_row >= t.max_nonfinite:
                    self.save()
                    raise NonFiniteTraining(
                        f"{self.nonfinite_in_a_row} steps in a row (training.max_nonfinite={t.max_nonfinite}) had a "
                        f"non-finite gradient, the last at step {self.step}; the weights are unchanged since step "
                        f"{self.step - self.nonfinite_in_a_row} and saved in {self.ckpt_dir / checkpoint.LATEST}. Lower "
                        f"optim.lr, set optim.grad_clip, or check the data, then rerun to resume")
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
                if self.power_ema is not None and self.dist.main and (
                        self.step % t.ema_snapshot_every == 0 or self.step == t.n_iters):
                    self.power_ema.save_snapshot(self.workdir)
                if self.step % t.save_every == 0 or self.step % t.snapshot_every == 0 or self.step == t.n_iters:
                    self.save(snapshot=self.step % t.snapshot_every == 0 or self.step == t.n_iters)
                if self.dist.all_max(int(self.stop_requested)) and self.step < t.n_iters:  # all ranks stop here
                    self.save()
                    raise Preempted(self.step, self.ckpt_dir / checkpoint.LATEST)
        except KeyboardInterrupt:
            self.save()
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
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
