"""Peak memory of one training step (forward + backward) with and without activation checkpointing.

Each variant runs in a fresh process, so that one's allocations do not hide the other's. On CUDA the figure is
torch.cuda.max_memory_allocated; on a CPU it is the growth of the process's peak resident set (ru_maxrss) over one
step, after the network, its input and its gradients' first allocation (a warm-up step at batch 1) exist. The
ratio of the two is measured in the same run.

    python benchmarks/activation_memory.py [--config configs/vp/ddpmpp_cifar10_continuous.py] [--batch 16] [--device cpu]
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(config_path: str, batch: int, device: str, checkpointing: bool) -> dict:
    import torch

    from scoresde import builders
    from scoresde.config import load_config
    from scoresde.models import activation_checkpointing

    torch.manual_seed(0)
    config = load_config(config_path)
    shape = (3, config.data.image_size or 32, config.data.image_size or 32)
    model = builders.build_model(config.model, shape).to(device).train()
    if checkpointing:
        activation_checkpointing.enable(model)
    dev = torch.device(device)

    def step(b):
        x = torch.randn(b, *shape, device=dev)
        t = torch.rand(b, device=dev) * 0.9 + 0.05
        model(x, t).square().mean().backward()

    step(1)  # the gradients' buffers and the allocator's first pages
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    step(batch)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"peak_bytes": peak, "seconds": time.perf_counter() - start,
            "params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs/vp/ddpmpp_cifar10_continuous.py"))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--one", choices=["on", "off"], help=argparse.SUPPRESS)  # the child process
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.config, args.batch, args.device, args.one == "on")))
        return
    rows = {}
    for mode in ("off", "on"):
        out = subprocess.run([sys.executable, __file__, "--config", args.config, "--batch", str(args.batch),
                              "--device", args.device, "--one", mode], capture_output=True, text=True, check=True)
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    off, on = rows["off"], rows["on"]
    print(f"{Path(args.config).name}: {off['params'] / 1e6:.1f}M parameters, batch {args.batch}, {args.device}, "
          f"{off['threads']} threads")
    print("| activation checkpointing | peak memory of one step (MiB) | step time (s) |\n|---|---:|---:|")
    for mode, r in (("off", off), ("on", on)):
        print(f"| {mode} | {r['peak_bytes'] / 2**20:.0f} | {r['seconds']:.2f} |")
    print(f"ratio on/off: memory {on['peak_bytes'] / off['peak_bytes']:.2f}, time {on['seconds'] / off['seconds']:.2f}")


if __name__ == "__main__":
    main()
