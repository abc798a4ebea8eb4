"""The `scoresde` command: train, sample, eval and compare runs. `scoresde <command> --help` lists every flag."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _add_train(sub):
    p = sub.add_parser("train", help="train (or resume) a run from a config file",
                       description="Train from a config file; rerunning the same command resumes from the latest "
                                   "checkpoint. Override any config key with --config.KEY=VALUE, for example "
                                   "--config.training.n_iters=2000 --config.sde.type=subvp.")
    p.add_argument("--config", required=True, help="Python config file with get_config(), e.g. configs/vp/toy.py")
    p.add_argument("--workdir", required=True, help="folder for checkpoints, logs and samples")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_sample(sub):
    p = sub.add_parser("sample", help="draw samples from a trained run's EMA weights",
                       description="Sample with any sampler; extra sampler options as --option NAME=VALUE.")
    p.add_argument("--workdir", required=True, help="a run's folder (holds checkpoints/latest.pt)")
    p.add_argument("--sampler", default=None, help="sampler name, e.g. pc, ode, ode:heun, torchsde:srk (default: the config's)")
    p.add_argument("--steps", type=int, default=None, help="number of steps (default: the config's)")
    p.add_argument("--n", type=int, default=1000, help="number of samples (default 1000)")
    p.add_argument("--batch-size", type=int, default=1000, help="samples per sampler call (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="sampler option, repeatable, e.g. --option snr=0.16 --option method=heun")
    p.add_argument("--out", default=None, help="output .npz path (default: WORKDIR/samples/<sampler>_<steps>.npz)")


def _add_eval(sub):
    p = sub.add_parser("eval", help="held-out loss and bits/dim of a trained run",
                       description="Held-out DSM loss of the EMA model and its bits/dim from the probability-flow "
                                   "ODE likelihood (Hutchinson trace) on config.eval.n_bpd held-out samples.")
    p.add_argument("--workdir", required=True, help="a run's folder")
    p.add_argument("--n", type=int, default=None, help="held-out samples for bits/dim (default: config.eval.n_bpd)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Hutchinson probes (default 0)")


def _parse_options(items):
    from .config import _parse_value
    options = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--option must look like NAME=VALUE, got {item!r}")
        name, text = item.split("=", 1)
        options[name] = _parse_value(text)
    return options


def load_run(workdir: str, device: str = "auto"):
    """A Trainer restored from WORKDIR/checkpoints/latest.pt, on `device`, for sampling and evaluation."""
    from .config import from_json
    from .training import Trainer

    ckpt = Path(workdir) / "checkpoints" / "latest.pt"
    if not ckpt.exists():
        raise FileNotFoundError(f"no checkpoint at {ckpt}; train first: scoresde train --config ... --workdir {workdir}")
    config = from_json((Path(workdir) / "config.json").read_text())
    config.training.device = device
    return Trainer(config, workdir, progress_bar=False, read_only=True)


def sample_batches(run, sampler, n: int, batch_size: int, seed: int):
    """n samples from the run's EMA model in batches (seeds seed, seed + batch_size, ...): (x on CPU, NFE per batch, seconds)."""
    xs, nfe, start = [], 0, time.perf_counter()
    for i in range(0, n, batch_size):
        x, nfe = run.sample(min(batch_size, n - i), sampler=sampler, seed=seed + i)
        xs.append(x.cpu())  # the copy to the host also waits for the device to finish
    return torch.cat(xs), nfe, time.perf_counter() - start


def cmd_train(args, overrides):
    from .config import apply_overrides, load_config
    from .training import train

    config = apply_overrides(load_config(args.config), overrides)
    start = time.perf_counter()
    workdir = train(config, args.workdir, progress_bar=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {config.training.n_iters} steps in {time.perf_counter() - start:.0f} s; results in {workdir}/ "
              f"(checkpoints/, samples/, log.jsonl, config.json)")


def cmd_sample(args):
    from . import builders
    from .training.loop import save_samples

    run = load_run(args.workdir, args.device)
    sampler = builders.build_sampler(run.config, args.sampler, args.steps, **_parse_options(args.option))
    name, steps = (args.sampler or run.config.sampling.name).replace(":", "-"), args.steps or run.config.sampling.steps
    x, nfe, seconds = sample_batches(run, sampler, args.n, args.batch_size, args.seed)
    out = Path(args.out or Path(args.workdir) / "samples" / f"{name}_{steps}.npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, samples=x.numpy(), nfe=nfe, seconds=seconds)
    png = save_samples(x[:64] if run.data.is_image else x, run.data, out.with_suffix(".png"))
    print(f"{len(x)} samples, {nfe} NFE per batch, {seconds:.1f} s: wrote {out}" + (f" and {png}" if png else ""))


def cmd_eval(args):
    from .builders import build_score_fn
    from .likelihood import likelihood

    run = load_run(args.workdir, args.device)
    n = args.n or run.config.eval.n_bpd
    x = run.data.eval_data[:n].to(run.device)
    score_fn = build_score_fn(run.ema.model, run.sde, run.config)
    bpds, nfe = [], 0
    for i in range(0, len(x), run.config.eval.batch_size):
        r = likelihood(score_fn, run.sde, x[i:i + run.config.eval.batch_size],
                       generator=torch.Generator(device=run.device).manual_seed(args.seed + i))
        bpds.append(r.bpd.cpu())
        nfe += r.nfe
    bpd = torch.cat(bpds)
    result = {"step": run.step, "eval_loss": run.eval_loss(), "bits_per_dim": bpd.mean().item(),
              "bits_per_dim_se": (bpd.std() / len(bpd) ** 0.5).item(), "n": len(bpd), "nfe": nfe}
    out = Path(args.workdir) / "eval.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"step {run.step}: held-out loss {result['eval_loss']:.4f}, {result['bits_per_dim']:.3f} ± "
          f"{result['bits_per_dim_se']:.3f} bits/dim on {len(bpd)} held-out samples; wrote {out}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scoresde", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_sample(sub)
    _add_eval(sub)
    from .compare import add_parser as add_compare
    add_compare(sub)
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "train":
            cmd_train(args, rest)
            return
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        from .compare import run as cmd_compare
        {"sample": cmd_sample, "eval": cmd_eval, "compare": cmd_compare}[args.command](args)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"scoresde {args.command}: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
