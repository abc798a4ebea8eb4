"""Training throughput (images/s) of DDPM's CIFAR-10 U-Net and of the toy MLP, on whatever device is present.

One training step is forward + backward + Adam + EMA through the same code as `scoresde train`
(Trainer.train_step). The baseline in the same run is the model's forward pass alone at the same batch:
the printed ratio step/forward is the cost of training relative to inference.

    python benchmarks/train_throughput.py [--batch 128] [--steps 3] [--device cpu|cuda] [--bf16]
"""
import argparse
import tempfile
import time

import torch

from scoresde.config import load_config
from scoresde.training import Trainer


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_model(model, loss_step, x, t, steps, device):
    with torch.no_grad():
        model(x, t)  # warm-up
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            model(x, t)
        sync(device)
        forward = (time.perf_counter() - start) / steps
    loss_step()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss_step()
    sync(device)
    return forward, (time.perf_counter() - start) / steps


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--toy-batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    from scoresde import builders
    from scoresde.losses import DDPMLoss
    from scoresde.sde import VPSDE

    # DDPM CIFAR-10: the 35.7M U-Net with the discrete loss, on random images (no data files needed).
    config = load_config("configs/vp/ddpm_cifar10.py")
    model = builders.build_model(config.model, (3, 32, 32)).to(device)
    opt, loss_fn = torch.optim.Adam(model.parameters(), lr=2e-4), DDPMLoss(VPSDE())
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if args.bf16 else torch.autocast("cpu", enabled=False)

    def unet_step():
        with autocast:
            loss = loss_fn(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    forward, step = time_model(model, unet_step, x, torch.randint(0, 1000, (args.batch,), device=device), args.steps, device)
    print("\n| model | batch | forward (s) | train step (s) | images/s | step / forward |\n|---|---:|---:|---:|---:|---:|")
    print(f"| DDPM U-Net 35.7M | {args.batch} | {forward:.3f} | {step:.3f} | {args.batch / step:.1f} | {step / forward:.2f} |")

    with tempfile.TemporaryDirectory() as workdir:
        config = load_config("configs/vp/toy.py")
        config.training.update(batch_size=args.toy_batch, device=str(device), n_iters=10**9)
        trainer = Trainer(config, workdir, progress_bar=False)
        xt = torch.randn(args.toy_batch, 2, device=device)
        tt = torch.rand(args.toy_batch, device=device)
        n = max(args.steps, 200)
        forward, step = time_model(trainer.model, trainer.train_step, xt, tt, n, device)
        print(f"| toy MLP ({sum(p.numel() for p in trainer.model.parameters()) / 1e3:.0f}k) | {args.toy_batch} | "
              f"{forward:.5f} | {step:.5f} | {args.toy_batch / step:.0f} | {step / forward:.2f} |")


if __name__ == "__main__":
    main()
