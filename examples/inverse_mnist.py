"""Inpainting (replacement, and RePaint's resampling) and ILVR with the unconditional MNIST model, no retraining.

    OMP_NUM_THREADS=1 python examples/inverse_mnist.py --workdir runs/mnist

On `--n` held-out digits: inpaint the lower half (or a centre box, --mask box) from the known pixels with plain
replacement (Song et al. 2021, App. I) and with RePaint's resampling (Lugmayr et al. 2022, --resample r); ILVR (Choi
et al. 2021) from 7 × 7 references (N = 4). Colourisation does not apply to greyscale digits. Writes
OUT/inverse_mnist.png (per method: input | result | ground truth) and OUT/inverse_mnist.{md,csv}: PSNR and SSIM
against the ground truth (images in [-1, 1], data range 2), consistency (MSE on the known pixels, or between D x and
the 7 × 7 reference) and the accuracy of the run's feature classifier on the results, each ± its standard error over
images.
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

from scoresde import inverse, load_run, metrics
from scoresde.features import feature_classifier
from scoresde.resize import downsample, upsample


def masks(kind: str, shape) -> torch.Tensor:
    """1 where known: the upper half ("half") or all but a centre box of half the size ("box")."""
    m = torch.ones(shape)
    h, w = shape[-2:]
    if kind == "half":
        m[..., h // 2:, :] = 0
    else:
        m[..., h // 4:h - h // 4, w // 4:w - w // 4] = 0
    return m


def mean_se(v: torch.Tensor) -> tuple[float, float]:
    v = v.double().flatten()
    return v.mean().item(), (v.std() / len(v) ** 0.5).item() if len(v) > 1 else float("nan")


def evaluate(x, truth, labels, judge, consistency) -> dict:
    """Per-image metrics, mean ± standard error."""
    x = x.clamp(-1, 1)
    with torch.no_grad():
        right = (judge(x).argmax(1).cpu() == labels).double()
    return {"PSNR (dB)": mean_se(metrics.psnr(x, truth, data_range=2.0)),
            "SSIM": mean_se(metrics.ssim(x, truth, data_range=2.0)),
            "consistency MSE": mean_se(consistency(x)),
            "classifier accuracy": mean_se(right)}


def save_figure(blocks, path: Path, per_row: int):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(blocks), 1, figsize=(per_row * 0.9, len(blocks) * 3.0))
    for ax, (title, rows) in zip(axes, blocks):
        strip = torch.cat([torch.cat(list(r[:per_row, 0].clamp(-1, 1)), dim=1) for r in rows], dim=0)
        ax.imshow((strip + 1) / 2, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_yticks([14 + 28 * i for i in range(len(rows))], ["input", "result", "truth"][:len(rows)])
        ax.set_xticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/mnist", help="an unconditional MNIST run")
    p.add_argument("--n", type=int, default=100, help="held-out digits")
    p.add_argument("--sampler", default="ancestral", help="a one-step sampler (scoresde.inverse.ONE_STEP)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--mask", choices=["half", "box"], default="half", help="known: the upper half, or all but a box")
    p.add_argument("--resample", type=int, default=5, help="RePaint's r for the resampled row")
    p.add_argument("--jump", type=int, default=1, help="RePaint's jump length j")
    p.add_argument("--factor", type=int, default=4, help="ILVR's N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/results")
    args = p.parse_args(argv)
    start = time.perf_counter()
    run = load_run(args.workdir)
    truth, labels = run.data.eval_data[:args.n].to(run.device), run.data.eval_labels[:args.n]
    judge = feature_classifier(Path(args.workdir), run.data, run.data.labels, run.device)
    mask = masks(args.mask, truth.shape).to(run.device)
    low = downsample(truth, args.factor)  # the 7 × 7 references
    known_mse = lambda x: ((x - truth) ** 2 * mask).flatten(1).sum(1) / mask.flatten(1).sum(1)
    low_mse = lambda x: ((downsample(x, args.factor) - low) ** 2).flatten(1).mean(1)
    print(f"{run}; {args.n} digits, {args.sampler} with {args.steps} steps")

    rows, blocks = [], []
    methods = [(f"inpaint ({args.mask}), replacement", "inpaint", 1),
               (f"inpaint ({args.mask}), RePaint r={args.resample}, j={args.jump}", "inpaint", args.resample),
               (f"ILVR N={args.factor} ({low.shape[-1]}x{low.shape[-1]} reference)", "ilvr", 1)]
    for title, method, r in methods:
        t0 = time.perf_counter()
        sampler = run.sampler(args.sampler, args.steps)
        if method == "inpaint":
            x, nfe = run.inpaint(truth, mask, sampler, seed=args.seed, resample=r, jump=args.jump)
            shown, consistency = truth * mask + (1 - mask) * 0.0, known_mse
        else:
            g = torch.Generator(device=run.device).manual_seed(args.seed)
            x, nfe = inverse.ilvr(run.score_fn, run.sde, upsample(low, args.factor), args.factor, sampler, generator=g)
            shown, consistency = upsample(low, args.factor), low_mse
        m = evaluate(x, truth, labels, judge, consistency)
        rows.append({"method": title, "NFE": nfe, **m, "seconds": time.perf_counter() - t0})
        blocks.append((title, [shown.cpu(), x.cpu(), truth.cpu()]))
        print(f"{title}: NFE {nfe}, " + ", ".join(f"{k} {v[0]:.4g} ± {v[1]:.2g}" for k, v in m.items())
              + f" ({rows[-1]['seconds']:.0f} s)", flush=True)
    with torch.no_grad():
        acc = mean_se((judge(truth).argmax(1).cpu() == labels).double())
    rows.append({"method": "ground truth (classifier ceiling)", "NFE": 0, "classifier accuracy": acc})

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(blocks, out / "inverse_mnist.png", per_row=12)
    keys = ["PSNR (dB)", "SSIM", "consistency MSE", "classifier accuracy"]
    fmt = lambda v: f"{v[0]:.4g} ± {v[1]:.2g}" if v else ""
    with open(out / "inverse_mnist.md", "w") as f:
        f.write("| method | NFE | " + " | ".join(keys) + " |\n|---|---|" + "---|" * len(keys) + "\n")
        for row in rows:
            f.write(f"| {row['method']} | {row['NFE']} | " + " | ".join(fmt(row.get(k)) for k in keys) + " |\n")
    with open(out / "inverse_mnist.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "nfe"] + [c for k in keys for c in (k, k + " se")])
        for row in rows:
            w.writerow([row["method"], row["NFE"]] + [c for k in keys for c in (row.get(k) or ("", ""))])
    print((out / "inverse_mnist.md").read_text())
    print(f"wrote {out / 'inverse_mnist.png'}, .md and .csv in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
