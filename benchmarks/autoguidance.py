"""Autoguidance on the ring of eight Gaussians: does guiding a model by a weaker one (w > 0) bring its samples
closer to the data, in sliced Wasserstein-1 against fresh exact samples?

Trains configs/vp/toy.py on eight_gaussians (--n-iters steps, an MLP of width --hidden) in --workdir, reusing a
finished run. The weak model is a smaller MLP (--weak-hidden) trained --weak-step steps, or with --weak-hidden 0 the
strong run's own checkpoint at --weak-step. For each w, --seeds sample sets of --n points (the probability-flow ODE,
Heun, --steps steps) are scored against one held-out exact set of --n points. The table gives the mean over seeds
with its standard error, the ratio to w = 0 (the model alone) measured in the same run, and the change from w = 0
with its paired standard error (the seeds are shared). Two mode statistics say where the errors are: the fraction
of points farther than 0.4 from their nearest centre (exactly exp(−8) = 0.0003) and the per-coordinate spread
around it (exactly 0.100). The floor is --seeds fresh exact sets of --n points against the same held-out set.

    python benchmarks/autoguidance.py [--workdir runs/ring] [--n-iters 4000] [--weak-hidden 32 --weak-step 1000]
"""
import argparse
import math
import time

import torch

from scoresde.checkpoint import trained_step
from scoresde.config import apply_overrides, load_config
from scoresde.data.toy import eight_gaussians
from scoresde.metrics import sliced_wasserstein
from scoresde.run import load_run
from scoresde.training import train


def mode_stats(x):
    """(fraction of points farther than 0.4 from their nearest centre, the per-coordinate spread around it): the
    data's are exp(−8) = 0.0003 and 0.100."""
    k = torch.round(torch.atan2(x[:, 1], x[:, 0]) / (math.pi / 4)) % 8
    centre = 2 * torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], 1)
    d = x - centre
    return (d.norm(dim=1) > 0.4).double().mean().item(), d.std(0).mean().item()


def mean_se(values):
    t = torch.tensor(values, dtype=torch.float64)
    return t.mean().item(), (t.std() / math.sqrt(len(t))).item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/ring")
    p.add_argument("--n-iters", type=int, default=4000)
    p.add_argument("--hidden", type=int, default=256, help="the strong model's MLP width")
    p.add_argument("--weak-step", type=int, default=1000, help="the checkpoint of the weak run that guides it")
    p.add_argument("--weak-hidden", type=int, default=32,
                   help="> 0: the weak model is a smaller network (this MLP width), trained --weak-step steps in "
                        "WORKDIR_weak; 0: the strong run's own checkpoint at --weak-step")
    p.add_argument("--guidance", default="0,0.1,0.2,0.3,0.5", help="w: (1 + w) s − w s_weak (EDM2's w is 1 + w)")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=25)
    args = p.parse_args(argv)
    print(f"torch threads: {torch.get_num_threads()}")
    config = apply_overrides(load_config("configs/vp/toy.py"), [
        "--config.data.dataset=eight_gaussians", f"--config.training.n_iters={args.n_iters}",
        f"--config.model.hidden={args.hidden}",
        f"--config.training.snapshot_every={args.weak_step}", "--config.training.device=cpu",
        "--config.training.sample_every=100000", "--config.training.eval_every=100000"])
    if trained_step(args.workdir) < args.n_iters:
        start = time.perf_counter()
        train(config, args.workdir, progress_bar=False)
        print(f"trained {args.n_iters} steps in {time.perf_counter() - start:.0f} s")
    weak_dir = args.workdir
    if args.weak_hidden:
        weak_dir = f"{args.workdir}_weak{args.weak_hidden}"
        small = apply_overrides(config, [f"--config.model.hidden={args.weak_hidden}",
                                         f"--config.training.n_iters={args.weak_step}"])
        if trained_step(weak_dir) < args.weak_step:
            train(small, weak_dir, progress_bar=False)
    run, weak = load_run(args.workdir, "cpu"), load_run(weak_dir, "cpu", checkpoint=args.weak_step)
    held_out = eight_gaussians(args.n, torch.Generator().manual_seed(10_000))
    floor = mean_se([sliced_wasserstein(eight_gaussians(args.n, torch.Generator().manual_seed(s)), held_out,
                                        generator=torch.Generator().manual_seed(0)) for s in range(args.seeds)])
    print(f"model: MLP width {run.config.model.hidden}, step {run.step}; weak model: width "
          f"{weak.config.model.hidden}, step {weak.step}; {args.seeds} seeds x {args.n} samples, ode:heun "
          f"{args.steps} steps")
    print(f"{'w':>6}  {'sliced W1':>18}  {'ratio to w=0':>12}  {'change, paired SE':>19}  {'beyond 0.4':>10}  "
          f"{'spread':>6}")
    base = base_sw = None
    for w in [float(v) for v in args.guidance.split(",")]:
        sw, stats = [], []
        for s in range(args.seeds):
            x, nfe = run.sample(args.n, "ode", steps=args.steps, seed=1000 * s, method="heun", autoguide=weak,
                                guidance=w)
            sw.append(sliced_wasserstein(x, held_out, generator=torch.Generator().manual_seed(0)))
            stats.append(mode_stats(x))
        m, se = mean_se(sw)
        base, base_sw = (m, sw) if base is None else (base, base_sw)
        change, change_se = mean_se([a - b for a, b in zip(sw, base_sw)])  # the same seeds: a paired difference
        far, spread = (sum(v) / len(v) for v in zip(*stats))
        print(f"{w:>6g}  {m:.4f} ± {se:.4f}  {m / base:>12.3f}  {change:+.4f} ± {change_se:.4f}  {far:>10.4f}  "
              f"{spread:>6.3f}", flush=True)
    print(f"{'floor':>6}  {floor[0]:.4f} ± {floor[1]:.4f}  {floor[0] / base:>12.3f}  {'':>19}  {math.exp(-8):>10.4f}  "
          f"{0.1:>6.3f}  (exact samples)")


if __name__ == "__main__":
    main()
