"""The `scoresde compare` command: parses its arguments and prints; the comparison is `scoresde.compare.compare`."""
from __future__ import annotations

import argparse

from . import compare as compare_
from ._args import nonnegative_int, parse_floats, parse_options, positive_int
from .run import load_run


def add_parser(sub):
    p = sub.add_parser("compare", help="compare samplers x step budgets on a trained run: table, plot, samples",
                       description=compare_.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="a trained run's folder")
    p.add_argument("--samplers", default=compare_.DEFAULT_SAMPLERS, help=f"comma-separated sampler names (default {compare_.DEFAULT_SAMPLERS})")
    p.add_argument("--steps", default="10,20,50,100,1000", help="comma-separated step budgets (default 10,20,50,100,1000)")
    p.add_argument("--n", type=positive_int, default=10000, help="samples per row (default 10000)")
    p.add_argument("--batch-size", type=positive_int, default=10000, help="samples per sampler call (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed shared by every row (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="an option for every sampler that accepts it, e.g. --option eta=0.5 (repeatable)")
    p.add_argument("--out", default=None, help="output folder (default WORKDIR/compare)")
    p.add_argument("--features", default="classifier", choices=["classifier", "inception"],
                   help="image features for the Fréchet distance and KID (default: a classifier trained on the data)")
    p.add_argument("--inception-path", default=None,
                   help="with --features inception: a local pt_inception-2015-12-05-*.pth (pytorch-fid) or TorchScript file")
    p.add_argument("--classifier-steps", type=positive_int, default=1500,
                   help="training steps of the feature classifier (default 1500)")
    p.add_argument("--bpd-n", type=nonnegative_int, default=0,
                   help="also report bits/dim on this many held-out samples (default 0: skip); 8-bit images are "
                        "dequantised (see scoresde eval)")
    p.add_argument("--bpd-raw", action="store_true",
                   help="with --bpd-n on 8-bit images: the raw density of the scaled pixel values, not dequantised")
    g = p.add_argument_group("class-conditional runs: guidance rows (see README, Guidance)")
    g.add_argument("--guidance", default=None, metavar="W",
                   help="comma-separated classifier-free guidance scales w (0 = conditional, -1 = unconditional): "
                        "every sampler x budget row is repeated per w, classes drawn in turn, and the feature "
                        "classifier's accuracy on the samples is reported (class fidelity); a list that starts "
                        "with a negative number needs '=': --guidance=-1,0,2")
    g.add_argument("--classifier", default=None, metavar="WORKDIR", help="a noise-aware classifier run: classifier guidance")
    g.add_argument("--classifier-scale", type=float, default=1.0, help="classifier guidance scale (default 1)")


def parse_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_budgets(text: str) -> list[int]:
    budgets = []
    for item in text.split(","):
        try:
            budgets.append(positive_int(item.strip()))
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"--steps must be comma-separated integers >= 1; {item.strip()!r} {e}") from None
    return budgets


def run(args):
    samplers = parse_list(args.samplers)
    if not samplers:
        raise ValueError(f"--samplers must name at least one sampler, got {args.samplers!r}")
    budgets, options = parse_budgets(args.steps), parse_options(args.option)
    guidance = parse_floats(args.guidance, "--guidance") if args.guidance is not None else None
    run_ = load_run(args.workdir, args.device)
    if guidance is not None and not run_.num_classes:
        raise ValueError(f"--guidance needs a class-conditional run (config.model.num_classes > 0); {args.workdir} "
                         f"is unconditional")
    if args.features == "inception" and not args.inception_path:
        raise ValueError("--features inception needs --inception-path FILE (pt_inception .pth or TorchScript)")
    classifier = load_run(args.classifier, run_.device) if args.classifier else None
    _, written = compare_.compare(
        run_, samplers, budgets, n=args.n, batch_size=args.batch_size, seed=args.seed, options=options, out=args.out,
        features=args.features, inception_path=args.inception_path, classifier_steps=args.classifier_steps,
        guidance=guidance, classifier=classifier, classifier_scale=args.classifier_scale, bpd_n=args.bpd_n,
        dequantize=not args.bpd_raw, log=print, show_progress=True)
    table = next((p for p in written if p.suffix == ".md"), None)
    if table is not None:
        print(table.read_text().rstrip())
    print("wrote " + ", ".join(str(p) for p in written))
