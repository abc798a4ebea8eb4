"""Forward-pass time of the image networks on one machine, in one run: NCSN++ and DDPM++ (score_sde's CIFAR-10
configs) next to scoresde's DDPM U-Net (configs/vp/ddpm_cifar10.py), with the ratio to the U-Net.

    OMP_NUM_THREADS=2 python benchmarks/network_speed.py --batch 8 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scoresde import families  # noqa: E402
from scoresde.config import load_config, validate  # noqa: E402

CONFIGS = ["vp/ddpm_cifar10.py", "vp/ddpmpp_cifar10_continuous.py", "vp/ncsnpp_cifar10_continuous.py",
           "ve/ncsnpp_cifar10_continuous.py", "ve/ncsnpp_deep_cifar10_continuous.py"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}, float32, batch {args.batch}, "
          f"median of {args.repeats} forward passes after one warm-up")
    print("| config | network | parameters | seconds per forward | ratio to the DDPM U-Net |")
    print("|---|---|---|---|---|")
    base = None
    for name in CONFIGS:
        config = validate(load_config(str(ROOT / "configs" / name)))
        torch.manual_seed(0)
        model = families.get_family(config).model(config, (3, 32, 32)).to(args.device).eval()
        x = torch.randn(args.batch, 3, 32, 32, device=args.device)
        t = torch.full((args.batch,), 0.5, device=args.device)
        model(x, t)
        times = []
        for _ in range(args.repeats):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x, t)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        base = base or seconds
        print(f"| {name} | {config.model.name} | {sum(p.numel() for p in model.parameters()):,} | {seconds:.3f} | "
              f"{seconds / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
