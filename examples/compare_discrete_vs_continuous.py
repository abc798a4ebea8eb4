"""Discrete vs continuous sampling on one trained model, the question of Song et al. 2021, Table 1.

Trains configs/vp/toy.py (or resumes it), then runs `scoresde compare` with every sampler at several
step budgets on the same seeds, and prints the table. The plot of quality against NFE and the best
samples per sampler are written next to it.

    python examples/compare_discrete_vs_continuous.py [--workdir runs/compare_toy] [--n 2000] [--publish]

--publish copies the table and plots to examples/results/, where the README shows them.
"""
import argparse
import shutil
from pathlib import Path

from scoresde.checkpoint import trained_step
from scoresde.cli import main as scoresde_main
from scoresde.config import load_config
from scoresde.training import train

ROOT = Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/compare_toy")
    p.add_argument("--n", type=int, default=2000, help="samples per sampler and budget (the README table used 5000)")
    p.add_argument("--steps", default="10,20,50,100,1000")
    p.add_argument("--samplers", default="ancestral,ddim,reverse_diffusion,euler_maruyama,pc,ode,ode:heun,torchsde:srk")
    p.add_argument("--publish", action="store_true", help="copy the results to examples/results/")
    args = p.parse_args()

    config = load_config(str(ROOT / "configs/vp/toy.py"))
    if trained_step(args.workdir) < config.training.n_iters:
        print(f"== training {config.training.n_iters} steps of configs/vp/toy.py in {args.workdir}")
        train(config, args.workdir)
    print("== comparing samplers")
    scoresde_main(["compare", "--workdir", args.workdir, "--samplers", args.samplers, "--steps", args.steps,
                   "--n", str(args.n), "--batch-size", str(args.n), "--bpd-n", "500"])
    out = Path(args.workdir) / "compare"
    print("\n" + (out / "results.md").read_text())
    if args.publish:
        dest = ROOT / "examples" / "results"
        dest.mkdir(exist_ok=True)
        for name in ("results.md", "results.csv", "quality_vs_nfe.png", "best_samples.png"):
            shutil.copy(out / name, dest / f"compare_toy_{name}")
        print(f"copied the table and plots to {dest}")


if __name__ == "__main__":
    main()
