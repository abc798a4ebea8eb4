"""The `scoresde` command: train, sample, eval, compare, restore and import runs, and rebuild post-hoc EMAs. `scoresde <command> --help` lists every flag.

A mistake a user can make (a bad flag, config or workdir) prints one line and exits with status 2
(set SCORESDE_DEBUG=1 for the traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

from ._args import checkpoint_arg, parse_floats, parse_labels, parse_options, positive_int


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
    p.add_argument("--checkpoint", default=None, metavar="STEP|PATH",
                   help="which weights: a training step (ckpt_STEP.pt), or a path such as a post-hoc EMA checkpoint "
                        "that scoresde ema wrote (default: the newest)")
    p.add_argument("--sampler", default=None, help="sampler name, e.g. pc, ode, ode:heun, torchsde:srk (default: the config's)")
    p.add_argument("--steps", type=positive_int, default=None, help="number of steps (default: the config's)")
    p.add_argument("--n", type=positive_int, default=None, help="number of samples (default 1000)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="samples per sampler call (default 1000; with --seeds 250 per process)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="sampler option, repeatable, e.g. --option snr=0.16 --option method=heun")
    p.add_argument("--out", default=None, help="output .npz path (default: WORKDIR/samples/<sampler>_<steps>.npz); "
                                               "with --seeds a folder (default: WORKDIR/samples/<sampler>_<steps>_seeds<SPEC>)")
    p.add_argument("--respace", default=None, metavar="SPEC",
                   help="run a discrete model on a subsequence of its steps, spelt as guided-diffusion does: 250, "
                        "10,15,20 or ddim25 (instead of --steps; for a list of timesteps use --option respacing=[...])")
    s = p.add_argument_group("sharded sampling: one seed per sample, into a folder, under torchrun or not (see "
                             "docs, Scaling out)")
    s.add_argument("--seeds", default=None, metavar="SPEC",
                   help="the samples' seeds, e.g. 0-49999 or 0-9,20-29 (instead of --n and --seed): each process of "
                        "torchrun takes its share of the shards, the files do not depend on the number of processes, "
                        "and rerunning the same command skips finished shards")
    s.add_argument("--shard-size", type=positive_int, default=1000, help="seeds per shard file (default 1000)")
    s.add_argument("--png", action="store_true", help="also write one PNG per seed (images/000000/000123.png)")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar over shards")
    s.add_argument("--raw", action="store_true",
                   help="image runs: also keep the float32 samples, not only the 8-bit images")
    g = p.add_argument_group("class-conditional runs (see README, Guidance)")
    g.add_argument("--labels", default=None, metavar="CLASSES",
                   help="classes to sample: 'all' or comma-separated, e.g. 3 or 0,1,7 (default: unconditional)")
    g.add_argument("--guidance", default="0", metavar="W",
                   help="classifier-free guidance w (Ho & Salimans: 0 = conditional, -1 = unconditional; "
                        "diffusers' guidance_scale = 1 + w); comma-separated for a grid, with '=' before a leading "
                        "minus: --guidance=-1,0,2 (default 0)")
    g.add_argument("--classifier", default=None, metavar="WORKDIR",
                   help="a trained noise-aware classifier run (config.family='classifier') for classifier guidance")
    g.add_argument("--classifier-scale", type=float, default=1.0, help="classifier guidance scale λ (default 1)")
    g.add_argument("--autoguide", default=None, metavar="WORKDIR",
                   help="autoguidance (Karras et al. 2024): a weaker run of the same data and SDE, e.g. this run's "
                        "folder with --autoguide-checkpoint at an early step; --guidance is then autoguidance's w, "
                        "(1 + w) s − w s_weak (EDM2's w = 1 + w), for any run, with or without --labels")
    g.add_argument("--autoguide-checkpoint", default=None, metavar="STEP|PATH",
                   help="the weaker run's checkpoint: a training step (its ckpt_STEP.pt) or a path (default: its newest)")


def _add_eval(sub):
    p = sub.add_parser("eval", help="held-out loss and bits/dim of a trained run",
                       description="Held-out loss of the EMA model and its bits/dim from the probability-flow "
                                   "ODE likelihood (Hutchinson trace) on config.eval.n_bpd held-out samples, and next "
                                   "to it the discrete variational bound (Ho et al. 2020) of the model's N-step chain; "
                                   "or what the run's family evaluates instead (a discrete chain's T-step bound, a "
                                   "classifier's accuracy).")
    p.add_argument("--workdir", required=True, help="a run's folder")
    p.add_argument("--n", type=positive_int, default=None, help="held-out samples for bits/dim (default: config.eval.n_bpd)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Hutchinson probes and dequantisation (default 0)")
    p.add_argument("--raw-density", action="store_true",
                   help="8-bit image data: report the raw continuous density of the scaled pixel values instead of "
                        "dequantised bits/dim (not a likelihood of the data; it can be negative)")


def _add_import(sub):
    p = sub.add_parser("import", help="import a published checkpoint as a scoresde run (weights only)",
                       description="Write a published checkpoint as a scoresde run in WORKDIR: the weights are read "
                                   "with torch.load(weights_only=True), never any code. Then sample, eval and "
                                   "compare it like a trained run. Override config keys with --config.KEY=VALUE.")
    p.add_argument("source", help="where the checkpoint comes from: score_sde, edm or diffusers")
    p.add_argument("checkpoint", help="the checkpoint: score_sde's checkpoint_N.pth, EDM's network-snapshot-*.pkl, or "
                                      "a diffusers pipeline folder")
    p.add_argument("--config", default=None,
                   help="score_sde: the scoresde config of the same model, a file or a name under configs/, e.g. "
                        "vp/ddpmpp_cifar10_continuous (edm: read from the pickle)")
    p.add_argument("--workdir", required=True, help="the run folder to write")
    p.add_argument("--weights", default="ema", choices=["ema", "model"],
                   help="ema: the EMA weights, as the original samples (default); model: the raw weights")


def _add_ema(sub):
    p = sub.add_parser("ema", help="post-hoc EMA: rebuild the weights of any EMA width from a run's snapshots",
                       description="Reconstruct the power-function EMA of relative width σ_rel (Karras et al. 2024, "
                                   "EDM2) from the snapshots of the profiles a run tracked (training.ema_sigma_rels, "
                                   "training.ema_snapshot_every), by least squares over their profiles, and write it "
                                   "as a checkpoint: scoresde sample --workdir W --checkpoint PATH samples it.")
    p.add_argument("--workdir", required=True, help="a run trained with post-hoc EMA snapshots")
    p.add_argument("--sigma-rel", required=True, metavar="S[,S...]",
                   help=f"relative width(s) in (0, 0.30028], comma-separated, e.g. 0.07 or 0.03,0.05,0.1")
    p.add_argument("--step", type=positive_int, default=None,
                   help="the training step of the profile (default: the last snapshot's)")


def cmd_ema(args):
    from .posthoc_ema import write_checkpoint

    for sigma_rel in parse_floats(args.sigma_rel, "--sigma-rel"):
        path, info = write_checkpoint(args.workdir, sigma_rel, args.step)
        print(f"σ_rel {info['sigma_rel']:g} (γ = {info['gamma']:.3f}) at step {info['step']}, from "
              f"{info['snapshots']} snapshots of σ_rel {', '.join(f'{s:g}' for s in info['profiles'])} (profile fit "
              f"error {100 * info['profile_error']:.2f}%): wrote {path}; sample it with scoresde sample --workdir "
              f"{args.workdir} --checkpoint {path}")


def _config_file(name: str) -> str:
    """A config file path, or a name under the repository's configs/ (with or without .py)."""
    from pathlib import Path as P
    if P(name).is_file():
        return name
    configs = P(__file__).resolve().parents[1] / "configs"
    for candidate in (configs / name, configs / f"{name}.py"):
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(f"config {name!r} is neither a file nor a name under {configs}")


def cmd_import(args, overrides):
    from .config import apply_overrides, load_config
    from .importers import import_run

    config = apply_overrides(load_config(_config_file(args.config)), overrides) if args.config else None
    workdir = import_run(args.source, args.checkpoint, args.workdir, config=config, weights=args.weights)
    print(f"imported {args.checkpoint} ({args.source}, {args.weights} weights) as a scoresde run in {workdir}: "
          f"scoresde sample --workdir {workdir}")


def cmd_train(args, overrides):
    from .config import apply_overrides, load_config
    from .training import NonFiniteTraining, Preempted, Trainer

    config = apply_overrides(load_config(args.config), overrides)
    trainer = Trainer(config, args.workdir, progress_bar=not args.no_progress)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    start, t0 = trainer.step, time.perf_counter()
    if main_rank and trainer.resumed_from:
        print(f"resuming from step {start} ({trainer.resumed_from[1]})")
    cost = trainer.posthoc_ema_cost()
    if main_rank and cost:
        print(cost)
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
    except Preempted as e:  # SIGTERM from a scheduler: the step finished and was saved
        if main_rank:
            launcher = "the same torchrun command" if "WORLD_SIZE" in os.environ else "it"
            print(f"\npreempted (SIGTERM) at step {e.step}; saved {e.path}; to resume, rerun {launcher}: "
                  f"scoresde {' '.join(shlex.quote(a) for a in sys.argv[1:])}", file=sys.stderr)
        sys.exit(143)
    except NonFiniteTraining as e:
        if main_rank:
            print(f"scoresde train: error: {e}", file=sys.stderr)
        sys.exit(1)
    if main_rank and trainer.step > start:
        print(f"trained {trainer.step - start} steps ({start} -> {trainer.step}) in {time.perf_counter() - t0:.0f} s; "
              f"results in {args.workdir}/ (checkpoints/, samples/, log.jsonl, config.json)")


def cmd_sample(args):
    from .distributed import Distributed
    from .run import load_run, select_device

    dist = Distributed(select_device(args.device)) if args.seeds is not None else None
    try:
        run = load_run(args.workdir, dist.device if dist else args.device, checkpoint=checkpoint_arg(args.checkpoint))
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
        if run.family.conditioning != "labels" and (args.labels is not None or args.classifier or
                                                    (args.guidance != "0" and args.autoguide is None)):
            raise ValueError(f"--labels, --guidance and --classifier are for class-conditional runs (--guidance also "
                             f"with --autoguide); this run's family is {run.family.name} ({run.family.description})")
        if args.autoguide_checkpoint is not None and args.autoguide is None:
            raise ValueError("--autoguide-checkpoint picks the weaker run's weights: give --autoguide WORKDIR too")
        classifier = load_run(args.classifier, run.device) if args.classifier else None
        weak = (load_run(args.autoguide, run.device, checkpoint=checkpoint_arg(args.autoguide_checkpoint))
                if args.autoguide else None)
        classes = run.num_classes or (classifier.num_classes if classifier is not None else 0)
        labels, guidance = parse_labels(args.labels, classes), parse_floats(args.guidance, "--guidance")
        if args.seeds is None:
            for flag in ("shard_size", "png", "raw", "no_progress"):
                if getattr(args, flag) not in (1000, False):
                    raise ValueError(f"--{flag.replace('_', '-')} is for sharded sampling: give --seeds too")
            print(run.family.sample_command(run, sampler, name=name, steps=steps, n=args.n or 1000,
                                            seed=args.seed or 0, batch_size=args.batch_size or 1000, out=args.out,
                                            labels=labels, guidance=guidance, classifier=classifier,
                                            classifier_scale=args.classifier_scale, autoguide=weak))
            return
        _sample_shards(args, run, sampler, dist, name, steps, options, labels, guidance, classifier, weak)
    finally:
        if dist is not None:
            dist.close()


def _sample_shards(args, run, sampler, dist, name, steps, options, labels, guidance, classifier, weak):
    """scoresde sample --seeds: this process's shards into a folder (shards.sample_to_folder)."""
    from . import shards

    if args.n is not None or args.seed is not None:
        raise ValueError("--seeds gives every sample its seed: leave out --n and --seed")
    if run.family.conditioning == "image":
        raise ValueError(f"--seeds samples from noise; a {run.family.name} run samples given held-out images "
                         f"(leave out --seeds)")
    if (labels is not None and len(labels) > 1 and len(labels) != classes_of(run, classifier)) or len(guidance) > 1:
        raise ValueError("--seeds takes one --labels class, or --labels all (class = seed mod the number of classes), "
                         "and one --guidance value")
    seeds = shards.parse_seeds(args.seeds)
    out = args.out or str(run.workdir / "samples" / f"{name}_{steps}_seeds{args.seeds.replace(',', '_')}")
    label = None if labels is None else ("seed" if len(labels) > 1 else labels[0])
    settings = {"sampler": name, "steps": steps, "options": {k: repr(v) for k, v in sorted(options.items())},
                "classifier": str(classifier.checkpoint_path) if classifier else None,
                "classifier_scale": args.classifier_scale if classifier else None,
                "autoguide": str(weak.checkpoint_path) if weak else None}
    result = shards.sample_to_folder(
        run, sampler, seeds, out, batch_size=args.batch_size or 250, shard_size=args.shard_size, png=args.png,
        raw=args.raw, labels=label, guidance=guidance[0], settings=settings, dist=dist,
        log=print if dist.main else (lambda line: None), progress_bar=not args.no_progress,
        classifier=classifier, classifier_scale=args.classifier_scale, autoguide=weak)
    if dist.main:
        cost = f", {result['nfe']} NFE per batch" if result["nfe"] else ""
        print(f"{result['samples']} samples of seeds {args.seeds} in {result['shards']} shards ({result['written']} "
              f"written now, {result['skipped']} already there){cost}, {result['seconds']:.1f} s over {dist.world} "
              f"process{'es' if dist.world > 1 else ''}: {out}")


def classes_of(run, classifier) -> int:
    return run.num_classes or (classifier.num_classes if classifier is not None else 0)


def cmd_eval(args):
    from .run import load_run

    run = load_run(args.workdir, args.device)
    result = run.family.evaluate(run, n=args.n, seed=args.seed, dequantize=not args.raw_density,
                                 log=lambda line: print(line, flush=True))
    out = Path(args.workdir) / "eval.json"
    try:
        out.write_text(json.dumps(result, indent=2))
        wrote = f"; wrote {out}"
    except OSError as e:  # a read-only workdir still gets its numbers
        wrote = f"; could not write {out}: {e.strerror}"
    first, *rest = run.family.report(result)
    print("\n".join([first + wrote, *rest]))


def _main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _one_line_warnings(message, category, filename, lineno, line=None):
    return f"scoresde: warning: {message}\n"


def main(argv=None):
    parser = _Parser(prog="scoresde", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    _add_sample(sub)
    _add_eval(sub)
    _add_import(sub)
    _add_ema(sub)
    from .cli_compare import add_parser as add_compare
    from .cli_fid import add_parser as add_fid
    from .cli_restore import add_parser as add_restore
    add_compare(sub)
    add_restore(sub)
    add_fid(sub)
    args, rest = parser.parse_known_args(argv)
    format_warning, warnings.formatwarning = warnings.formatwarning, _one_line_warnings
    try:
        if args.command in ("train", "import"):
            (cmd_train if args.command == "train" else cmd_import)(args, rest)
            return
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        from .cli_compare import run as cmd_compare
        from .cli_fid import run_fid, run_fid_ref
        from .cli_restore import run as cmd_restore
        {"sample": cmd_sample, "eval": cmd_eval, "compare": cmd_compare, "ema": cmd_ema, "restore": cmd_restore,
         "fid": run_fid, "fid-ref": run_fid_ref}[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        if os.environ.get("SCORESDE_DEBUG"):  # developers: the full traceback
            raise
        if _main_rank():  # under torchrun every rank meets the error; one line says it
            print(f"scoresde {args.command}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a read-only or full workdir, a missing folder, ...
        where = f": {e.filename}" if e.filename else ""
        if _main_rank():
            print(f"scoresde {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"\nscoresde {args.command}: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        warnings.formatwarning = format_warning


if __name__ == "__main__":
    main()
