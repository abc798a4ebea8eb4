"""Every inverse-problem method on real digits, with the unconditional MNIST model and no retraining.

    OMP_NUM_THREADS=1 python examples/inverse_mnist.py --workdir runs/mnist

On `--n` held-out digits (images in [-1, 1]) and three tasks, each observed with noise σ_y (default 0.05):
    inpaint      the upper half known (the lower half restored);
    downsample   4× super-resolution from 7 × 7 block means;
    blur         a 9 × 9 Gaussian blur of std 2 pixels (circular; frequencies below 3 % of the peak removed);
every method of scoresde.inverse.solve runs at the same NFE (`--steps`, ancestral moves; RePaint with r = 4 runs
steps/4 grid times; SMC's NFE is per particle and its cost `--particles` times that). Writes OUT/inverse_mnist.png
(per task: observation | each method | truth) and OUT/inverse_mnist.{md,csv}: PSNR and SSIM against the truth (data
range 2), consistency ‖A x − y‖ per image (its noise alone gives σ_y √m, m the observed values), the accuracy of the
run's feature classifier on the restorations, each ± its standard error over the digits, and the wall time.
"""
from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import torch

from scoresde import inverse, load_run, metrics
from scoresde.features import feature_classifier

TASKS = ("inpaint", "downsample", "blur")
METHODS = [("replacement", {}), ("repaint", {"resample": 4}), ("ilvr", {}), ("dps", {}), ("pigdm", {}),
           ("ddrm", {}), ("ddnm", {}), ("smc", {})]


def mean_se(v: torch.Tensor) -> tuple[float, float]:
    v = v.double().flatten()
    return v.mean().item(), (v.std() / len(v) ** 0.5).item() if len(v) > 1 else float("nan")


def evaluate(x, truth, labels, judge, op, y) -> dict:
    """PSNR, SSIM and accuracy of the images clamped to [-1, 1]; consistency of x as returned."""
    residual = (op.A(x.double()) - y.double()).flatten(1).norm(dim=1)
    x = x.clamp(-1, 1)
    with torch.no_grad():
        right = (judge(x).argmax(1).cpu() == labels).double()
    return {"PSNR (dB)": mean_se(metrics.psnr(x, truth, data_range=2.0)),
            "SSIM": mean_se(metrics.ssim(x, truth, data_range=2.0)),
            "consistency ‖Ax − y‖": mean_se(residual),
            "classifier accuracy": mean_se(right)}


def save_figure(blocks, path: Path, per_row: int):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n_rows = max(len(rows) for _, rows in blocks)
    fig, axes = plt.subplots(1, len(blocks), figsize=(len(blocks) * per_row * 0.55 + 1.5, n_rows * 0.62 + 0.6))
    for ax, (title, rows) in zip(axes, blocks):
        strip = torch.cat([torch.cat(list(x[:per_row, 0].clamp(-1, 1)), dim=1) for _, x in rows], dim=0)
        ax.imshow((strip.cpu() + 1) / 2, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_yticks([14 + 28 * i for i in range(len(rows))], [name for name, _ in rows], fontsize=8)
        ax.set_xticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/mnist", help="an unconditional MNIST run")
    p.add_argument("--n", type=int, default=100, help="held-out digits")
    p.add_argument("--steps", type=int, default=100, help="NFE of every method")
    p.add_argument("--sigma-y", type=float, default=0.05)
    p.add_argument("--particles", type=int, default=8, help="SMC particles per digit")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--methods", default=",".join(m for m, _ in METHODS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/results")
    args = p.parse_args(argv)
    start = time.perf_counter()
    run = load_run(args.workdir)
    truth, labels = run.data.eval_data[:args.n].to(run.device), run.data.eval_labels[:args.n]
    judge = feature_classifier(Path(args.workdir), run.data, run.data.labels, run.device)
    wanted = args.methods.split(",")
    print(f"{run}; {args.n} digits, NFE {args.steps}, σ_y = {args.sigma_y}, torch threads {torch.get_num_threads()}")
    rows, blocks = [], []
    for task in args.tasks.split(","):
        op = inverse.build_operator(task, run.shape)
        g = torch.Generator().manual_seed(args.seed)
        observed = op.matrix(run.shape).abs().sum(1) > 0  # rows of A that observe something
        y = op.A(truth.double().cpu())
        y = (y + args.sigma_y * torch.randn(y.shape, generator=g, dtype=torch.float64)
             * observed.reshape(1, *op.out_shape)).float().to(run.device)
        m = int(observed.sum())
        shown = [("observed", op.pinv(y.double()).float())]
        for method, options in METHODS:
            if method not in wanted:
                continue
            options = {**options, **({"particles": args.particles} if method == "smc" else {})}
            steps = args.steps // options.get("resample", 1)
            t0 = time.perf_counter()
            x, nfe = run.restore(y, op, method, args.sigma_y, "ancestral", steps, seed=args.seed, **options)
            seconds = time.perf_counter() - t0
            row = {"task": task, "method": method + "".join(f" {k}={v}" for k, v in options.items()), "NFE": nfe,
                   **evaluate(x, truth, labels, judge, op, y), "seconds": seconds}
            rows.append(row)
            shown.append((method, x.float()))
            print(f"{task} / {row['method']}: NFE {nfe}, " + ", ".join(f"{k} {v[0]:.4g} ± {v[1]:.2g}" for k, v in
                  row.items() if isinstance(v, tuple)) + f" ({seconds:.0f} s)", flush=True)
        rows.append({"task": task, "method": f"noise alone: σ_y √m (m = {m})", "NFE": 0,
                     "consistency ‖Ax − y‖": (args.sigma_y * math.sqrt(m), 0.0)})
        blocks.append((f"{task}, σ_y = {args.sigma_y}", shown + [("truth", truth)]))
    with torch.no_grad():
        rows.append({"task": "-", "method": "ground truth (classifier ceiling)", "NFE": 0,
                     "classifier accuracy": mean_se((judge(truth).argmax(1).cpu() == labels).double())})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(blocks, out / "inverse_mnist.png", per_row=10)
    keys = ["PSNR (dB)", "SSIM", "consistency ‖Ax − y‖", "classifier accuracy"]
    fmt = lambda v: f"{v[0]:.4g} ± {v[1]:.2g}" if v else ""  # noqa: E731
    with open(out / "inverse_mnist.md", "w") as f:
        f.write("| task | method | NFE | " + " | ".join(keys) + " | seconds |\n|---|---|---|" + "---|" * len(keys)
                + "---|\n")
        for row in rows:
            secs = f"{row['seconds']:.0f}" if "seconds" in row else ""
            f.write(f"| {row['task']} | {row['method']} | {row['NFE']} | " + " | ".join(fmt(row.get(k)) for k in keys)
                    + f" | {secs} |\n")
    with open(out / "inverse_mnist.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task", "method", "nfe"] + [c for k in keys for c in (k, k + " se")] + ["seconds"])
        for row in rows:
            w.writerow([row["task"], row["method"], row["NFE"]] + [c for k in keys for c in (row.get(k) or ("", ""))]
                       + [row.get("seconds", "")])
    print((out / "inverse_mnist.md").read_text())
    print(f"wrote {out / 'inverse_mnist.png'}, .md and .csv in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
