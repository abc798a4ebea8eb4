"""`scoresde fid` and `scoresde fid-ref`: FID of a run or of sample files against reference statistics, sharded
over the processes of torchrun (scoresde.fid), and the reference statistics of a data set.

A run's samples come from `scoresde.shards` (one seed per sample, resumable shards in WORKDIR/fid/), so a
protocol's 50,000 samples survive a killed job; the features of every set are sharded over the ranks and their
statistics reduced in float64. The report goes to a JSON file and to the screen: the FID of each seed set, their
mean ± sd and min, and anything that makes a number unreliable.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ._args import checkpoint_arg, parse_options, positive_int


def _add_features(p):
    p.add_argument("--features", default="inception", choices=["inception", "classifier"],
                   help="Inception-v3 pool features (comparable with papers; needs --inception-path), or the run's "
                        "own small classifier (offline; not comparable with published FIDs) (default inception)")
    p.add_argument("--inception-path", default=None, metavar="FILE",
                   help="pytorch-fid's pt_inception-2015-12-05-*.pth or NVlabs' inception-2015-12-05.pt (nothing is "
                        "downloaded)")
    p.add_argument("--batch-size", type=positive_int, default=250, help="images per feature batch and, when "
                                                                        "sampling, per sampler call (default 250)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def add_parser(sub):
    from .fid import PROTOCOLS
    p = sub.add_parser("fid", help="FID of a run (sampled by seed, resumable) or of sample files, under torchrun or not",
                       description="FID against reference statistics (.npz with mu and sigma, as pytorch-fid, EDM and "
                                   "scoresde fid-ref write), e.g. torchrun --nproc_per_node=8 -m scoresde fid "
                                   "--workdir runs/cifar10 --sampler heun --steps 18 --protocol edm --ref "
                                   "cifar10-32x32.npz --inception-path inception-2015-12-05.pt")
    p.add_argument("--workdir", default=None, help="a run to sample (or, with --features classifier, whose classifier "
                                                   "to use)")
    p.add_argument("--samples", action="append", default=[], metavar="DIR|FILE.npz",
                   help="instead of sampling: a folder that scoresde sample --seeds wrote, or an .npz of uint8 images "
                        "[N, H, W, C] (key images or arr_0); repeat for several seed sets")
    p.add_argument("--ref", required=True, metavar="REF.npz", help="reference statistics (mu, sigma)")
    p.add_argument("--protocol", default=None, choices=list(PROTOCOLS),
                   help="; ".join(f"{k}: {v.description}" for k, v in PROTOCOLS.items()) + " (default fid50k)")
    p.add_argument("--seeds", action="append", default=[], metavar="SPEC",
                   help="instead of --protocol: the seeds of one set, e.g. 0-9999; repeat for several sets")
    p.add_argument("--checkpoint", default=None, help="a training step or a checkpoint path (default: the newest)")
    p.add_argument("--sampler", default=None, help="sampler name (default: the config's)")
    p.add_argument("--steps", type=positive_int, default=None, help="number of steps (default: the config's)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="sampler option, repeatable")
    p.add_argument("--guidance", type=float, default=0.0,
                   help="class-conditional runs: the guidance weight w (classes are seed mod the number of classes)")
    p.add_argument("--out", default=None, metavar="FILE.json",
                   help="the report (default WORKDIR/fid/<sampler>_<steps>_<protocol>.json, or next to the first "
                        "--samples)")
    _add_features(p)

    r = sub.add_parser("fid-ref", help="reference statistics (mu, sigma) of a data set, for scoresde fid",
                       description="Write the Inception (or classifier) statistics of a run's data set to an .npz "
                                   "with mu and sigma, the format pytorch-fid and EDM read, e.g. scoresde fid-ref "
                                   "--config configs/vp/ddpmpp_cifar10_continuous.py --out cifar10_train.npz "
                                   "--inception-path pt_inception-2015-12-05-6726825d.pth")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--workdir", default=None, help="a run: its data set")
    src.add_argument("--config", default=None, help="a config file: its data set (config.data)")
    r.add_argument("--split", default="train", choices=["train", "eval"],
                   help="the training images or the held-out ones (default train)")
    r.add_argument("--out", required=True, metavar="REF.npz", help="where to write the statistics")
    _add_features(r)


def feature_function(args, run, dist):
    """uint8 images [B, C, H, W] → features, and a name for them (kept in reference files and reports)."""
    from .features import feature_classifier, inception_pixel_features

    if args.features == "inception":
        if not args.inception_path:
            raise ValueError("--features inception needs --inception-path FILE: pytorch-fid's pt_inception-2015-12-05-"
                             "*.pth or NVlabs' inception-2015-12-05.pt (nothing is downloaded); or use --features "
                             "classifier")
        return inception_pixel_features(args.inception_path, dist.device), f"inception-v3 ({Path(args.inception_path).name})"
    if run is None or not run.is_image:
        raise ValueError("--features classifier uses a run's own classifier: give the --workdir of an image run")
    if dist.main:  # rank 0 trains and caches it once; the others then load it
        feature_classifier(run.workdir, run.data, run.data.labels, dist.device)
    dist.barrier()
    net = feature_classifier(run.workdir, run.data, run.data.labels, dist.device)
    return (lambda u: net.features(run.data.scale(u.to(dist.device))).detach(),
            f"classifier ({Path(run.workdir).resolve() / 'feature_classifier.pt'})")


def _sets(args, run, dist, log):
    """[(name, source)] of sample sets: sample folders of the run (sampled here if needed), or args.samples."""
    from . import fid, shards

    if args.samples:
        if args.protocol or args.seeds or args.sampler or args.steps or args.option:
            raise ValueError("--samples measures existing samples: leave out --protocol, --seeds, --sampler, --steps "
                             "and --option")
        return [(s, s) for s in args.samples]
    if run is None:
        raise ValueError("give --workdir (a run to sample) or --samples (existing samples)")
    if not run.is_image:
        raise ValueError(f"FID is for image runs; {run.workdir} samples points (use scoresde compare)")
    if run.family.conditioning == "image":
        raise ValueError(f"a {run.family.name} run samples given images; measure its samples with --samples")
    if args.protocol and args.seeds:
        raise ValueError("give --protocol or --seeds, not both")
    protocol = fid.get_protocol(args.protocol or "fid50k")
    specs = args.seeds or [f"{k * protocol.samples}-{(k + 1) * protocol.samples - 1}"
                           for k in range(protocol.seed_sets)]
    options = parse_options(args.option)
    sampler = run.sampler(args.sampler, args.steps, **options)
    name = (args.sampler or run.config.sampling.name).replace(":", "-")
    steps = args.steps or run.config.sampling.steps
    labels = "seed" if run.num_classes else None  # a class-conditional model: classes in turn, by seed
    settings = {"sampler": name, "steps": steps, "options": {k: repr(v) for k, v in sorted(options.items())},
                "classifier": None, "classifier_scale": None, "autoguide": None}
    sets = []
    for spec in specs:
        seeds = shards.parse_seeds(spec)
        out = Path(run.workdir) / "fid" / f"{name}_{steps}" / f"seeds{spec.replace(',', '_')}"
        result = shards.sample_to_folder(run, sampler, seeds, out, batch_size=args.batch_size, labels=labels,
                                         guidance=args.guidance, settings=settings, dist=dist, log=log,
                                         progress_bar=not args.no_progress)
        cost = f", {result['nfe']} NFE per batch" if result["nfe"] else ""
        log(f"seeds {spec}: {result['written']} shards sampled now, {result['skipped']} already there "
            f"({result['seconds']:.0f} s{cost})")
        sets.append((f"seeds {spec}", out))
    return sets


def run_fid(args):
    from . import fid
    from .distributed import Distributed
    from .run import load_run, select_device

    dist = Distributed(select_device(args.device))
    log = print if dist.main else (lambda line: None)
    try:
        reference = fid.load_reference(args.ref)  # before hours of sampling
        run = None
        if args.workdir:
            run = load_run(args.workdir, dist.device, checkpoint=checkpoint_arg(args.checkpoint))
        features, feature_name = feature_function(args, run, dist)
        start, rows = time.perf_counter(), []
        for name, source in _sets(args, run, dist, log):
            stats = fid.statistics(source, features, batch_size=args.batch_size, dist=dist)
            if len(stats[0]) != len(reference["mu"]):
                fid.load_reference(args.ref, dim=len(stats[0]))  # raises, naming both dimensions
            value, problems = fid.fid(stats, reference)
            if reference["features"] and reference["features"] != feature_name:
                problems.append(f"the reference was made with {reference['features']}, the samples with {feature_name}")
            rows.append({"set": name, "source": str(source), "n": stats[2], "fid": value, "problems": problems})
            log(f"{name}: FID {value:.4f} over {stats[2]} samples" + "".join(f"\n  unreliable: {p}" for p in problems))
        summary = fid.summarize([r["fid"] for r in rows])
        report = {"reference": str(Path(args.ref).resolve()), "features": feature_name, "sets": rows, **summary,
                  "protocol": args.protocol, "processes": dist.world, "seconds": time.perf_counter() - start}
        if dist.main:
            out = Path(args.out) if args.out else _default_out(args, run)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=1) + "\n")
            spread = f" ± {summary['sd']:.4f} (sd over {len(rows)} sets), min {summary['min']:.4f}" if len(rows) > 1 else ""
            print(f"FID {summary['mean']:.4f}{spread}; {feature_name}; report: {out}")
    finally:
        dist.close()


def _default_out(args, run) -> Path:
    if args.samples:
        first = Path(args.samples[0])
        return first / "fid.json" if first.is_dir() else first.with_suffix(".fid.json")
    name = (args.sampler or run.config.sampling.name).replace(":", "-")
    what = args.protocol or ("seeds" + "+".join(args.seeds) if args.seeds else "fid50k")
    return Path(run.workdir) / "fid" / f"{name}_{args.steps or run.config.sampling.steps}_{what.replace(',', '_')}.json"


def run_fid_ref(args):
    from . import families, fid
    from .config import load_config, validate
    from .distributed import Distributed
    from .run import load_run, select_device

    dist = Distributed(select_device(args.device))
    try:
        if not args.out.endswith(".npz"):
            raise ValueError(f"--out must end in .npz, got {args.out!r}")
        if args.workdir:
            run = load_run(args.workdir, dist.device)
            data = run.data
        else:
            run, config = None, validate(load_config(args.config))
            data = families.get_family(config).data(config)
        if not data.is_image:
            raise ValueError("reference statistics are for image data sets; this one holds points")
        features, feature_name = feature_function(args, run, dist)
        images = data.images if args.split == "train" else data.eval_uint8
        start = time.perf_counter()
        mu, sigma, n = fid.statistics(images, features, batch_size=args.batch_size, dist=dist)
        if dist.main:
            path = fid.save_reference(args.out, mu, sigma, n, feature_name)
            print(f"reference statistics of {n} {args.split} images ({tuple(images.shape[1:])}), {feature_name}, "
                  f"{len(mu)} dimensions, {time.perf_counter() - start:.0f} s over {dist.world} process"
                  f"{'es' if dist.world > 1 else ''}: {path}")
    finally:
        dist.close()
