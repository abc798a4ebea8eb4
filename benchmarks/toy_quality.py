"""Sample quality after a fixed training budget on the toy checkerboard.

Trains configs/vp/toy.py (n_iters from the config, or --n-iters) in --workdir (reusing a finished run),
samples 5000 points with several samplers, and reports the sliced Wasserstein distance (p = 1) and MMD
to held-out data. The baseline, measured in the same run, is 5000 fresh exact samples of the checkerboard
against the same held-out set, averaged over 10 draws: the floor that a perfect model would reach, with
its spread. Ratios are to its mean.

    python benchmarks/toy_quality.py [--workdir runs/toy_quality] [--n-iters 20000]
"""
import argparse
import time

import torch

from scoresde.run import load_run
from scoresde.config import load_config
from scoresde.data.toy import checkerboard
from scoresde.metrics import mmd, sliced_wasserstein
from scoresde.sampling import get_sampler
from scoresde.training import train
from scoresde.checkpoint import trained_step


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/toy_quality")
    p.add_argument("--n-iters", type=int, default=None)
    p.add_argument("--n", type=int, default=5000)
    args = p.parse_args()
    config = load_config("configs/vp/toy.py")
    if args.n_iters:
        config.training.n_iters = args.n_iters
    if trained_step(args.workdir) < config.training.n_iters:
        start = time.perf_counter()
        train(config, args.workdir)
        print(f"trained {config.training.n_iters} steps in {time.perf_counter() - start:.0f} s")
    run = load_run(args.workdir, "cpu")
    held_out = run.data.eval_data
    # The floor is noisy itself: average it over 10 independent exact draws and report its spread.
    exact = [checkerboard(args.n, torch.Generator().manual_seed(10_000 + i)) for i in range(10)]
    floors = torch.tensor([sliced_wasserstein(e, held_out) for e in exact])
    floor_sw, floor_mmd = floors.mean().item(), sum(mmd(e[:2000], held_out[:2000]) for e in exact) / 10
    print(f"\nmodel: step {run.step}; {args.n} samples vs {len(held_out)} held-out points")
    print("| samples | NFE | sliced W1 | ratio to floor | MMD |\n|---|---:|---:|---:|---:|")
    print(f"| exact checkerboard (floor, mean ± sd of 10 draws) | - | {floor_sw:.4f} ± {floors.std():.4f} | 1.00 "
          f"| {floor_mmd:.5f} |")
    for label, name, opts in [("euler_maruyama, 500 steps", "euler_maruyama", {"steps": 500}),
                              ("pc, 500 steps", "pc", {"steps": 500}),
                              ("ode:heun, 50 steps", "ode", {"method": "heun", "steps": 50}),
                              ("ddim, 50 steps", "ddim", {"steps": 50})]:
        x, nfe = run.sample(args.n, sampler=get_sampler(name, progress=False, **opts), seed=0)
        sw = sliced_wasserstein(x, held_out)
        print(f"| {label} | {nfe} | {sw:.4f} | {sw / floor_sw:.2f} | {mmd(x[:2000], held_out[:2000]):.5f} |")


if __name__ == "__main__":
    main()
