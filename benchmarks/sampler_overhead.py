"""Per-step cost of each sampler beyond the score evaluations, next to the cost of one U-Net evaluation.

The score is almost free (s = −x, one tensor op), so the time per step is the sampler's own overhead.
The baseline in the same run is one forward pass of DDPM's 35.7M-parameter CIFAR-10 U-Net on the same
batch. On a CPU that pass is slow, so it is timed at --unet-batch images and scaled linearly to --batch.

    python benchmarks/sampler_overhead.py [--batch 256] [--steps 20] [--device cpu|cuda] [--unet-batch 16]
"""
import argparse
import time

import torch

import scoresde
from scoresde.models import UNet
from scoresde.sampling import get_sampler

SAMPLERS = {
    "ancestral": ("ancestral", {}), "reverse_diffusion": ("reverse_diffusion", {}),
    "euler_maruyama": ("euler_maruyama", {}), "pc (langevin)": ("pc", {}), "ddim": ("ddim", {}),
    "ode:euler": ("ode", {"method": "euler"}), "ode:heun": ("ode", {"method": "heun"}),
    "torchsde:euler": ("torchsde", {"method": "euler"}),
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats=3):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--unet-batch", type=int, default=None, help="batch for the U-Net timing (default: 16 on CPU, --batch on GPU)")
    args = p.parse_args()
    device, shape = torch.device(args.device), (args.batch, 3, 32, 32)
    sde, score = scoresde.VPSDE(), (lambda x, t: -x)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {shape}")

    unet_batch = args.unet_batch or (args.batch if device.type == "cuda" else 16)
    unet = UNet().to(device).eval()
    x, t = torch.randn(unet_batch, 3, 32, 32, device=device), torch.rand(unet_batch, device=device)
    with torch.no_grad():
        unet_s, _ = timed(lambda: unet(x, t), device, repeats=2)
    unet_ms = unet_s * 1e3 * args.batch / unet_batch
    print(f"U-Net forward (35.7M params): {unet_ms:.1f} ms per batch of {args.batch}"
          + (f" (timed at batch {unet_batch}, scaled linearly)" if unet_batch != args.batch else ""))

    print("\n| sampler | ms per step (free score) | NFE | ratio to one U-Net eval |\n|---|---:|---:|---:|")
    for label, (name, options) in SAMPLERS.items():
        sampler = get_sampler(name, steps=args.steps, progress=False, **options)
        g = torch.Generator(device=device).manual_seed(0)
        seconds, (_, nfe) = timed(lambda: sampler(score, sde, shape, generator=g, device=device), device)
        ms = seconds * 1e3 / args.steps
        print(f"| {label} | {ms:.2f} | {nfe} | {ms / unet_ms:.1e} |")

    print("\nProbability-flow ODE, adaptive RK45: time per NFE with the free score")
    for method in ("dopri5", "rk45"):
        sampler = get_sampler("ode", method=method, progress=False, rtol=1e-3, atol=1e-3)
        g = torch.Generator(device=device).manual_seed(0)
        seconds, (_, nfe) = timed(lambda: sampler(score, sde, shape, generator=g, device=device), device, repeats=1)
        print(f"  {method:7s} ({'torch, on the device' if method == 'dopri5' else 'scipy, host copies'}): "
              f"{seconds * 1e3 / nfe:.2f} ms per NFE over {nfe} NFE")


if __name__ == "__main__":
    main()
