"""The `scoresde` command: train, sample, eval and compare runs. `scoresde <command> --help` lists every flag.

A mistake a user can make (a bad flag, config or workdir) prints one line and exits with status 2
(set SCORESDE_DEBUG=1 for the traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ._args import parse_floats, parse_labels, parse_options, positive_int
from .resize import downsample, upsample


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: 'scoresde sample: error: ...' and exit status 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


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
    p.add_argument("--steps", type=positive_int, default=None, help="number of steps (default: the config's)")
    p.add_argument("--n", type=positive_int, default=1000, help="number of samples (default 1000)")
    p.add_argument("--batch-size", type=positive_int, default=1000, help="samples per sampler call (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="sampler option, repeatable, e.g. --option snr=0.16 --option method=heun")
    p.add_argument("--out", default=None, help="output .npz path (default: WORKDIR/samples/<sampler>_<steps>.npz)")
    p.add_argument("--respace", default=None, metavar="SPEC",
                   help="run a discrete model on a subsequence of its steps, spelt as guided-diffusion does: 250, "
                        "10,15,20 or ddim25 (instead of --steps; for a list of timesteps use --option respacing=[...])")
    g = p.add_argument_group("class-conditional runs (see README, Guidance)")
    g.add_argument("--labels", default=None, metavar="CLASSES",
                   help="classes to sample: 'all' or comma-separated, e.g. 3 or 0,1,7 (default: unconditional)")
    g.add_argument("--guidance", default="0", metavar="W",
                   help="classifier-free guidance w (Ho & Salimans: 0 = conditional, -1 = unconditional; "
                        "diffusers' guidance_scale = 1 + w); comma-separated for a grid, with '=' before a leading "
                        "minus: --guidance=-1,0,2 (default 0)")
    g.add_argument("--classifier", default=None, metavar="WORKDIR",
                   help="a trained noise-aware classifier run (config.model.name='classifier') for classifier guidance")
    g.add_argument("--classifier-scale", type=float, default=1.0, help="classifier guidance scale λ (default 1)")


def _add_eval(sub):
    p = sub.add_parser("eval", help="held-out loss and bits/dim of a trained run",
                       description="Held-out loss of the EMA model and its bits/dim from the probability-flow "
                                   "ODE likelihood (Hutchinson trace) on config.eval.n_bpd held-out samples, and next "
                                   "to it the discrete variational bound (Ho et al. 2020) of the model's N-step chain; "
                                   "for D3PM runs, the T-step variational bound instead.")
    p.add_argument("--workdir", required=True, help="a run's folder")
    p.add_argument("--n", type=positive_int, default=None, help="held-out samples for bits/dim (default: config.eval.n_bpd)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Hutchinson probes and dequantisation (default 0)")
    p.add_argument("--raw-density", action="store_true",
                   help="8-bit image data: report the raw continuous density of the scaled pixel values instead of "
                        "dequantised bits/dim (not a likelihood of the data; it can be negative)")


def cmd_train(args, overrides):
    from .config import apply_overrides, load_config
    from .training import Trainer

    config = apply_overrides(load_config(args.config), overrides)
    trainer = Trainer(config, args.workdir, progress_bar=not args.no_progress)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    start, t0 = trainer.step, time.perf_counter()
    if main_rank and trainer.resumed_from:
        print(f"resuming from step {start} ({trainer.resumed_from[1]})")
    if main_rank and start >= config.training.n_iters:
        print(f"{args.workdir} is already trained to step {start} (training.n_iters={config.training.n_iters}); "
              f"raise --config.training.n_iters to train further")
    try:
        trainer.train()
    except KeyboardInterrupt:
        if main_rank:
            print(f"\ninterrupted at step {trainer.step}; saved {trainer.ckpt_dir / 'latest.pt'}; "
                  f"run the same command to resume", file=sys.stderr)
        sys.exit(130)
    if main_rank and trainer.step > start:
        print(f"trained {trainer.step - start} steps ({start} -> {trainer.step}) in {time.perf_counter() - t0:.0f} s; "
              f"results in {args.workdir}/ (checkpoints/, samples/, log.jsonl, config.json)")


def cmd_sample(args):
    from .guidance import describe_cost
    from .run import load_run
    from .training.loop import save_samples

    run = load_run(args.workdir, args.device)
    options = parse_options(args.option)
    if args.respace is not None:
        if args.steps is not None:
            raise ValueError("give either --steps or --respace, not both")
        options["respacing"] = args.respace
    sampler = run.sampler(args.sampler, args.steps, **options)
    name, steps = (args.sampler or run.config.sampling.name).replace(":", "-"), args.steps or run.config.sampling.steps
    if "respacing" in options:
        spec = options["respacing"]
        steps = f"respaced-{spec.replace(',', '-')}" if isinstance(spec, str) else f"respaced-list{len(spec)}"
    if run.low_res_factor:
        return _super_resolve(args, run, sampler, name, steps)
    classifier = load_run(args.classifier, run.device) if args.classifier else None
    classes = run.num_classes or (classifier.num_classes if classifier is not None else 0)
    labels, ws = parse_labels(args.labels, classes), parse_floats(args.guidance, "--guidance")
    guide = {"classifier": classifier, "classifier_scale": args.classifier_scale}
    if labels is None and (ws != [0.0] or classifier is not None):
        raise ValueError("--guidance and --classifier need --labels (which classes to sample)")
    if labels is not None and (len(labels) > 1 or len(ws) > 1):
        return _sample_grid(args, run, sampler, name, steps, labels, ws, guide)
    if labels is not None:
        guide.update(labels=labels[0], guidance=ws[0])
        name += f"_y{labels[0]}_w{ws[0]:g}"
    x, nfe, seconds = run.timed_sample(args.n, sampler, seed=args.seed, batch_size=args.batch_size, **guide)
    cost = describe_cost(run.guided_score(**guide)) if labels is not None else ""
    out = _npz_path(args, f"{name}_{steps}.npz")
    replaced = " (replacing the earlier files of that name; --out PATH writes elsewhere)" if out.exists() else ""
    np.savez(out, samples=x.numpy(), nfe=nfe, seconds=seconds, step=run.step)
    png = save_samples(x[:64] if run.is_image else x, run, out.with_suffix(".png"))
    print(f"{len(x)} samples from step {run.step}, {nfe} NFE per batch{cost}, {seconds:.1f} s: wrote {out}"
          + (f" and {png}" if png else "") + replaced)


def _super_resolve(args, run, sampler, name, steps):
    """An SR3 run: super-resolve the first n held-out images; save them with their inputs and ground truth."""
    from .metrics import restoration_metrics
    from .training.loop import save_rows

    if args.labels is not None or args.classifier or args.guidance != "0":
        raise ValueError("--labels, --guidance and --classifier are for class-conditional runs; this is an SR3 run")
    truth = run.data.eval_data[:args.n]
    if len(truth) < args.n:
        raise ValueError(f"--n {args.n}: an SR3 run super-resolves held-out images, and this run has {len(truth)}")
    f = run.low_res_factor
    low_res = downsample(truth, f)
    x, nfe, seconds = run.timed_sample(args.n, sampler, seed=args.seed, batch_size=args.batch_size,
                                       condition=upsample(low_res, f))
    out = _npz_path(args, f"sr3_{name}_{steps}.npz")
    np.savez(out, samples=x.numpy(), low_res=low_res.numpy(), ground_truth=truth.numpy(), nfe=nfe,
             seconds=seconds, step=run.step)
    png = save_rows({f"input {low_res.shape[-2]}x{low_res.shape[-1]}": upsample(low_res, f), "SR3": x,
                     "ground truth": truth}, run, out.with_suffix(".png"),
                    title=f"SR3 x{f}, {name}, {nfe} NFE (step {run.step})")
    m = restoration_metrics(run.to_display(x), run.to_display(truth), lambda v: downsample(v, f),
                            run.to_display(low_res))  # on pixel values in [0, 1]
    print(f"{len(x)} super-resolved held-out images from step {run.step}, {nfe} NFE per batch, {seconds:.1f} s; "
          f"PSNR {m['psnr'][0]:.2f} ± {m['psnr'][1]:.2f} dB, SSIM {m['ssim'][0]:.3f}, consistency MSE "
          f"{m['consistency'][0]:.1e}: wrote {out}" + (f" and {png}" if png else ""))


def _npz_path(args, default_name: str) -> Path:
    """--out, or WORKDIR/samples/<default_name>, ending in .npz as np.savez writes it (so we report the true
    name), with its folder created."""
    out = Path(args.out or Path(args.workdir) / "samples" / default_name)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _sample_grid(args, run, sampler, name, steps, labels, ws, guide):
    """--labels with several classes or --guidance with several w: n samples per (class, w), the same seed in
    every cell, and a picture with a row per class and a column per w."""
    from .guidance import describe_cost
    from .training.loop import save_guidance_grid

    xs, start = [], time.perf_counter()
    for y in labels:
        for w in ws:
            x, nfe, _ = run.timed_sample(args.n, sampler, seed=args.seed, batch_size=args.batch_size,
                                         labels=y, guidance=w, **guide)
            xs.append(x)
    seconds = time.perf_counter() - start
    x = torch.stack(xs).reshape(len(labels), len(ws), *xs[0].shape)
    out = _npz_path(args, f"{name}_{steps}_grid.npz")
    np.savez(out, samples=x.numpy(), labels=np.array(labels), guidance=np.array(ws), step=run.step, seconds=seconds)
    clf = guide["classifier"]
    note = f"; classifier guidance, scale {args.classifier_scale:g}" if clf is not None else ""
    png = save_guidance_grid(x, labels, ws, run, out.with_suffix(".png"), note=note)
    costliest = max(ws, key=lambda w: w not in (0, -1))  # a w that doubles the batch, if any
    cost = describe_cost(run.guided_score(labels[0], costliest, **guide))
    print(f"{len(labels)} classes x {len(ws)} guidance scales x {args.n} samples from step {run.step}, {nfe} NFE per "
          f"batch{cost}" + (" where w is not 0 or -1" if "doubled" in cost and len(ws) > 1 else "")
          + f", {seconds:.1f} s: wrote {out}" + (f" and {png}" if png else ""))


def cmd_eval(args):
    from .run import load_run

    run = load_run(args.workdir, args.device)
    if run.objective == "classifier":  # a noise-aware classifier has no likelihood: its loss and accuracy
        result = {"step": run.step, **run.evaluate()}
        (Path(args.workdir) / "eval.json").write_text(json.dumps(result, indent=2))
        print(f"step {run.step}: held-out cross-entropy {result['eval_loss']:.4f}, accuracy {result['eval_accuracy']:.3f} "
              f"on noisy held-out inputs (t ~ U(eps, T)); wrote {Path(args.workdir) / 'eval.json'}")
        return
    n = args.n or run.config.eval.n_bpd
    x = run.data.eval_data[:n].to(run.device)
    print(f"bits/dim of {n} held-out samples ({run.family.bits_per_dim_name}): an adaptive solve whose cost grows "
          f"with the model's stiffness, often slowest for a briefly trained model ...", flush=True)
    start = time.perf_counter()
    b = run.bits_per_dim(n, args.seed, dequantize=not args.raw_density)
    bpd_seconds = time.perf_counter() - start
    chain = run.family.gaussian_chain and run.prior is None
    if chain:
        print(f"  {b.nfe} NFE, {bpd_seconds:.0f} s; now the discrete variational bound ({run.sde.N} model calls "
              f"on the {n} samples) ...", flush=True)
    start = time.perf_counter()
    discrete = discrete_bound(run, x, args.seed) if chain else {}
    result = {"step": run.step, "eval_loss": run.eval_loss(), "bits_per_dim": b.mean, "bits_per_dim_se": b.se,
              "bits_per_dim_kind": b.description, "dequantized": b.dequantized, "bpd_offset": b.offset,
              "n": len(b.bpd), "nfe": b.nfe, "bpd_seconds": bpd_seconds, "discrete": discrete,
              "discrete_seconds": time.perf_counter() - start if chain else None}
    out = Path(args.workdir) / "eval.json"
    try:
        out.write_text(json.dumps(result, indent=2))
        wrote = f"; wrote {out}"
    except OSError as e:  # a read-only workdir still gets its numbers
        wrote = f"; could not write {out}: {e.strerror}"
    print(f"step {run.step}: held-out loss {result['eval_loss']:.4f}, {result['bits_per_dim']:.3f} ± "
          f"{result['bits_per_dim_se']:.3f} bits/dim ({b.description}) on {len(b.bpd)} held-out samples, {b.nfe} NFE, "
          f"{bpd_seconds:.0f} s{wrote}")
    for variance, r in result["discrete"].items():
        print(f"  discrete variational bound, σ² = {variance}: {r['bpd']:.3f} ± {r['bpd_se']:.3f} bits/dim "
              f"(L_T {r['prior_bpd']:.2g}, Σ L_t-1 {r['kl_bpd']:.3f}, L_0 {r['decoder_bpd']:.3f})")


def _se(v: torch.Tensor) -> float:
    return (v.std() / len(v) ** 0.5).item() if len(v) > 1 else float("nan")


def discrete_bound(run, x, seed: int) -> dict:
    """{variance: bits/dim of L_vlb and its terms} on the model's N-step chain: the model's own variance (learned),
    or both fixed ones, β̃ and β (Ho et al. 2020), from the same model calls. {} where no decoder fits the data."""
    from .builders import vlb_decoder
    from .variances import learned_variance
    from .vlb import variational_bound

    try:
        decoder = vlb_decoder(run.config)
    except ValueError as e:
        print(f"  no discrete bound: {e}")
        return {}
    variances = ("learned",) if learned_variance(run.score_fn) else ("beta_tilde", "beta")
    g = torch.Generator(device=run.device).manual_seed(seed)
    bs = run.config.eval.batch_size
    parts = [variational_bound(run.score_fn, run.sde, x[i:i + bs], variances, decoder=decoder, generator=g)
             for i in range(0, len(x), bs)]
    out = {}
    for v in variances:
        bpd = torch.cat([p[v].bpd.cpu() for p in parts])
        terms = {k: sum(p[v].summary()[k] * len(p[v].bpd) for p in parts) / len(x) for k in parts[0][v].summary()}
        out[v] = {**terms, "bpd_se": _se(bpd)}
    return out


def _one_line_warnings(message, category, filename, lineno, line=None):
    return f"scoresde: warning: {message}\n"


def main(argv=None):
    parser = _Parser(prog="scoresde", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    _add_sample(sub)
    _add_eval(sub)
    from .cli_compare import add_parser as add_compare
    add_compare(sub)
    args, rest = parser.parse_known_args(argv)
    format_warning, warnings.formatwarning = warnings.formatwarning, _one_line_warnings
    try:
        if args.command == "train":
            cmd_train(args, rest)
            return
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        from .cli_compare import run as cmd_compare
        {"sample": cmd_sample, "eval": cmd_eval, "compare": cmd_compare}[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        if os.environ.get("SCORESDE_DEBUG"):  # developers: the full traceback
            raise
        print(f"scoresde {args.command}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a read-only or full workdir, a missing folder, ...
        where = f": {e.filename}" if e.filename else ""
        print(f"scoresde {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"\nscoresde {args.command}: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        warnings.formatwarning = format_warning


if __name__ == "__main__":
    main()
