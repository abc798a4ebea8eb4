"""`scoresde compare`: quality vs NFE vs wall time for every sampler × step budget on one trained model.

This is the question of Song et al. 2021, Table 1 (ancestral sampling vs reverse diffusion vs probability
flow vs predictor–corrector), asked of any run. Every row samples the EMA model with the same seeds.
Rows are appended to results.jsonl as they finish, so an interrupted comparison resumes where it stopped.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from . import metrics
from ._utils import progress

DEFAULT_SAMPLERS = "ancestral,reverse_diffusion,euler_maruyama,pc,ode,ddim,torchsde:srk"
KIND = {"ancestral": "discrete", "ddim": "discrete", "reverse_diffusion": "SDE", "euler_maruyama": "SDE",
        "pc": "SDE + corrector", "torchsde": "SDE", "ode": "ODE", "dpm_solver": "ODE", "unipc": "ODE", "deis": "ODE",
        "edm": "ODE", "dpm_solver_sde": "SDE"}
ADAPTIVE = ("ode", "ode:dopri5", "ode:rk45")  # step budgets do not apply: one row each


def add_parser(sub):
    p = sub.add_parser("compare", help="compare samplers x step budgets on a trained run: table, plot, samples",
                       description=__doc__)
    p.add_argument("--workdir", required=True, help="a trained run's folder")
    p.add_argument("--samplers", default=DEFAULT_SAMPLERS, help=f"comma-separated sampler names (default {DEFAULT_SAMPLERS})")
    p.add_argument("--steps", default="10,20,50,100,1000", help="comma-separated step budgets (default 10,20,50,100,1000)")
    p.add_argument("--n", type=int, default=10000, help="samples per row (default 10000)")
    p.add_argument("--batch-size", type=int, default=10000, help="samples per sampler call (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed shared by every row (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--out", default=None, help="output folder (default WORKDIR/compare)")
    p.add_argument("--features", default="classifier", choices=["classifier", "inception"],
                   help="image features for the Fréchet distance and KID (default: a classifier trained on the data)")
    p.add_argument("--inception-path", default=None,
                   help="with --features inception: a local pt_inception-2015-12-05-*.pth (pytorch-fid) or TorchScript file")
    p.add_argument("--classifier-steps", type=int, default=1500, help="training steps of the feature classifier (default 1500)")
    p.add_argument("--bpd-n", type=int, default=0, help="also report bits/dim on this many held-out samples (default 0: skip)")


def _rows_done(path: Path) -> dict:
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            rows[(row["sampler"], row["steps"], row["n"], row["seed"])] = row
    return rows


def _quality(run, x, feature_fn, ref_feats):
    """Metrics of samples x against held-out data: SW and MMD for low-dim data, Fréchet distance and KID on features."""
    if not run.data.is_image:
        ref = run.data.eval_data
        return {"sliced_wasserstein": metrics.sliced_wasserstein(x, ref), "mmd": metrics.mmd(x[:2000], ref[:2000])}
    feats = _batched_features(feature_fn, x, run.device)
    kid, _ = metrics.kid(feats, ref_feats, subsets=50, subset_size=min(1000, len(feats), len(ref_feats)))
    return {"frechet_distance": metrics.frechet_distance_features(feats, ref_feats), "kid": kid}


def _sample(run, name, steps, args):
    from .builders import build_sampler
    from .cli import sample_batches

    return sample_batches(run, build_sampler(run.config, name, steps, progress=False), args.n, args.batch_size, args.seed)


def _batched_features(feature_fn, x, device, chunk: int = 500):
    return torch.cat([feature_fn(x[i:i + chunk].to(device)).cpu() for i in range(0, len(x), chunk)])


def _features(run, args):
    if not run.data.is_image:
        return None, None
    from .data.images import IMAGE_DATASETS
    from .features import classifier_features, inception_features

    if args.features == "inception":
        if not args.inception_path:
            raise ValueError("--features inception needs --inception-path FILE (pt_inception .pth or TorchScript)")
        fn = inception_features(args.inception_path, run.data, run.device)
    else:
        _, labels = IMAGE_DATASETS[run.config.data.dataset](run.config.data.root, "train")
        fn = classifier_features(Path(args.workdir), run.data, labels, run.device, args.classifier_steps)
    return fn, _batched_features(fn, run.data.eval_data, run.device)


def run(args):
    from .builders import build_sampler
    from .cli import load_run

    run_ = load_run(args.workdir, args.device)
    out = Path(args.out or Path(args.workdir) / "compare")
    (out / "samples").mkdir(parents=True, exist_ok=True)
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    for name in samplers:  # fail before any sampling on an unknown name
        build_sampler(run_.config, name, 2, progress=False)
    try:
        budgets = [int(s) for s in args.steps.split(",")]
    except ValueError:
        raise ValueError(f"--steps must be comma-separated integers, got {args.steps!r}") from None
    plan = [(s, None if s in ADAPTIVE else b) for s in samplers for b in ([0] if s in ADAPTIVE else budgets)]
    done, rows_path = _rows_done(out / "results.jsonl"), out / "results.jsonl"
    feature_fn, ref_feats = _features(run_, args)
    print(f"comparing {len(plan)} sampler x budget rows on {args.workdir} (step {run_.step}), {args.n} samples each; "
          f"{sum((s, b or 0, args.n, args.seed) in done for s, b in plan)} already done in {rows_path}")
    for name, steps in progress(plan, True, desc="compare"):
        key = (name, steps or 0, args.n, args.seed)
        if key in done:
            continue
        x, nfe, seconds = _sample(run_, name, steps, args)
        row = {"sampler": name, "kind": KIND[name.split(":")[0]], "steps": steps or 0, "n": args.n, "seed": args.seed,
               "nfe": nfe, "seconds": seconds, "samples_per_s": args.n / seconds, **_quality(run_, x, feature_fn, ref_feats)}
        np.save(out / "samples" / f"{name.replace(':', '-')}_{steps or 'adaptive'}.npy", x[:2000].numpy())
        with open(rows_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        done[key] = row
        print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    rows = [done[(s, b or 0, args.n, args.seed)] for s, b in plan]
    extra = {}
    if args.bpd_n:
        extra["bits_per_dim"] = _bits_per_dim(run_, args.bpd_n, args.seed)
    written = write_reports(rows, out, run_, extra)
    print("wrote " + ", ".join(str(p) for p in written))


def _bits_per_dim(run_, n, seed):
    from .builders import build_score_fn
    from .likelihood import likelihood

    x = run_.data.eval_data[:n].to(run_.device)
    r = likelihood(build_score_fn(run_.ema.model, run_.sde, run_.config), run_.sde, x,
                   generator=torch.Generator(device=run_.device).manual_seed(seed))
    return r.bpd.mean().item()


def write_reports(rows, out: Path, run_, extra) -> list[Path]:
    """results.csv, results.json, results.md, quality_vs_nfe.png and best_samples.png."""
    metric = "sliced_wasserstein" if "sliced_wasserstein" in rows[0] else "frechet_distance"
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.json").write_text(json.dumps({"rows": rows, **extra}, indent=2))
    cols = ["sampler", "kind", "steps", "nfe", metric, "mmd" if metric == "sliced_wasserstein" else "kid",
            "seconds", "samples_per_s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" if c in ("sampler", "kind") else "---:" for c in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c] or "adaptive" if c == "steps" else r[c])
                                       for c in cols) + " |")
    if extra:
        lines += ["", *[f"{k}: {v:.4f}" for k, v in extra.items()]]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return [out / "results.csv", out / "results.json", out / "results.md", *_plots(rows, metric, out, run_)]


def _plots(rows, metric, out, run_):
    from .training.loop import image_grid

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["sampler"] for r in rows):
        rs = sorted((r for r in rows if r["sampler"] == name), key=lambda r: r["nfe"])
        ax.plot([r["nfe"] for r in rs], [r[metric] for r in rs], "o-" if len(rs) > 1 else "*", label=name, ms=5)
    ax.set(xscale="log", yscale="log", xlabel="NFE (score evaluations)", ylabel=metric.replace("_", " "),
           title="sample quality vs NFE (lower is better)")
    ax.legend(fontsize=7)
    fig.savefig(out / "quality_vs_nfe.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    best = {}
    for r in rows:
        if r["sampler"] not in best or r[metric] < best[r["sampler"]][metric]:
            best[r["sampler"]] = r
    fig, axes = plt.subplots(1, len(best), figsize=(2.6 * len(best), 2.8), squeeze=False)
    for ax, (name, r) in zip(axes[0], best.items()):
        x = torch.from_numpy(np.load(out / "samples" / f"{name.replace(':', '-')}_{r['steps'] or 'adaptive'}.npy"))
        if run_.data.is_image:
            x = run_.data.to_display(x[:16])
            ax.imshow(image_grid(x).numpy(), cmap="gray" if x.shape[1] == 1 else None, vmin=0, vmax=1)
            ax.axis("off")
        else:
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
            ax.set(xticks=[], yticks=[], aspect="equal")
        ax.set_title(f"{name}\n{r['steps'] or 'adaptive'} steps, {r['nfe']} NFE", fontsize=8)
    fig.savefig(out / "best_samples.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return [out / "quality_vs_nfe.png", out / "best_samples.png"]
