"""Training-step speed with and without training.compile (torch.compile, inductor), through Trainer.train_step.

Both variants run in this process, on the same data and weights; warm-up steps (where compilation happens) are
timed apart and left out of the step time. Models: the toy MLP (configs/vp/toy.py) and the 8×8 digits U-Net
(configs/vp/digits.py, needs scikit-learn).

    OMP_NUM_THREADS=1 python benchmarks/compile_speed.py [--steps 50] [--warmup 3] [--device cpu]
"""
import argparse
import tempfile
import time
from pathlib import Path

import torch

from scoresde.config import load_config
from scoresde.training import Trainer

ROOT = Path(__file__).resolve().parents[1]


def measure(config, steps: int, warmup: int, device) -> tuple[float, float]:
    """(seconds of the warm-up steps, seconds per step after them)."""
    with tempfile.TemporaryDirectory() as workdir:
        trainer = Trainer(config, workdir, progress_bar=False)
        start = time.perf_counter()
        for _ in range(warmup):
            trainer.train_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        warm = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        per_step = (time.perf_counter() - start) / steps
        trainer.close()
    return warm, per_step


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, {args.steps} timed steps after "
          f"{args.warmup} warm-up steps")
    print("| model | batch | eager s/step | compiled s/step | speed-up | compile (warm-up) s |\n|---|---:|---:|---:|---:|---:|")
    models = [("toy MLP", "configs/vp/toy.py", 512), ("digits U-Net", "configs/vp/digits.py", 64)]
    for name, path, batch in models:
        if "digits" in path:
            try:
                import sklearn  # noqa: F401
            except ImportError:
                print(f"| {name} | skipped: pip install scikit-learn |")
                continue
        times = {}
        for compiled in (False, True):
            config = load_config(str(ROOT / path))
            config.training.update(batch_size=batch, device=str(device), n_iters=10**9, compile=compiled)
            times[compiled] = measure(config, args.steps, args.warmup, device)
        (_, eager), (warm, fast) = times[False], times[True]
        print(f"| {name} | {batch} | {eager:.4f} | {fast:.4f} | {eager / fast:.2f}× | {warm:.1f} |")


if __name__ == "__main__":
    main()
