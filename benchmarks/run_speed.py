"""Training images/s and sampling seconds per image for every sampler, on one trained run, in one process.

Training: `--train-steps` steps of the run's own config (Trainer.train_step: forward, backward, Adam, EMA)
in a temporary workdir. Sampling: each sampler draws `--n` images from the run's EMA model at `--steps`.
The baseline, measured in the same run, is one forward pass of the network on the same batch: the
last column is (seconds per NFE) / (one forward pass), so 1.0 means the sampler adds no overhead.

    python benchmarks/run_speed.py --workdir runs/mnist [--n 64] [--steps 20] [--train-steps 5]
"""
import argparse
import tempfile
import time

import torch

import scoresde
from scoresde.config import from_json, to_json
from scoresde.training import Trainer

SAMPLERS = ["ancestral", "ddim", "dpm_solver", "reverse_diffusion", "euler_maruyama", "pc", "ode:heun", "ode",
            "torchsde:euler"]


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="a trained run")
    p.add_argument("--n", type=int, default=64, help="images per sampler call (default 64)")
    p.add_argument("--steps", type=int, default=20, help="steps of the fixed-step samplers (default 20)")
    p.add_argument("--train-steps", type=int, default=5, help="timed training steps (default 5, after 1 warm-up)")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    run = scoresde.load_run(args.workdir, device=args.device)
    device = run.device
    print(f"{run}; torch {torch.__version__}, {torch.get_num_threads()} threads")

    config = from_json(to_json(run.config))
    config.training.device = str(device)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, tmp, progress_bar=False)
        trainer.train_step()  # warm-up
        _, seconds = timed(lambda: [trainer.train_step() for _ in range(args.train_steps)], device)
        trainer.close()
    batch = config.training.batch_size
    print(f"\ntraining: batch {batch}, {seconds / args.train_steps:.3f} s per step, "
          f"{batch * args.train_steps / seconds:.1f} images/s")

    x = torch.randn(args.n, *run.shape, device=device)
    t = torch.full((args.n,), 0.5, device=device)
    with torch.no_grad():
        run.score_fn(x, t)  # warm-up
        _, forward = timed(lambda: run.score_fn(x, t), device)
    print(f"baseline: one forward pass on {args.n} images: {forward:.4f} s\n")
    print("| sampler | steps | NFE | seconds per image | seconds per NFE / forward pass |\n|---|---:|---:|---:|---:|")
    for name in SAMPLERS:
        sampler = run.sampler(name, args.steps)
        (_, nfe), seconds = timed(lambda: run.sample(args.n, sampler, seed=0), device)
        steps = "adaptive" if sampler.adaptive else args.steps
        print(f"| {name} | {steps} | {nfe} | {seconds / args.n:.4f} | {seconds / nfe / forward:.2f} |", flush=True)


if __name__ == "__main__":
    main()
