"""GPU figures in one run: training images/s of the CIFAR-10 DDPM++ config (fp32, bf16, compiled), sampling seconds
per image and each sampler's overhead over its network calls, peak memory, then the CUDA variants of the tests.

Training goes through `Trainer.train_step`, the code `scoresde train` runs, on random 32×32 images written as a
CIFAR-10 folder in a temporary directory (speed does not depend on the pixels). The network has random weights:
sampling speed does not depend on them either. The baseline for sampling, in the same run, is one forward pass
of the same network at the same batch: overhead = time / (NFE × forward) − 1.

    python benchmarks/gpu.py [--batch 128] [--sample-batch 256] [--steps 20] [--out docs/results/gpu.md]
    python benchmarks/gpu.py --smoke      # on a CPU: a tiny network, no CUDA parts (they are skipped, and said so)

Without a CUDA device it measures nothing unless --smoke is given, prints which parts it skipped and exits 0.
"""
from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = [("ancestral", {}), ("euler_maruyama", {}), ("pc", {}), ("ode", {"method": "heun"}), ("ddim", {}),
            ("dpm_solver", {}), ("unipc", {}), ("deis", {}), ("ipndm", {}), ("edm", {})]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_cifar10(root: Path, n: int) -> Path:
    """n random 32×32 RGB images per training file, in CIFAR-10's local layout (cifar-10-batches-py/)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": [i % 10 for i in range(n)]}, f)
    return root


def config_for(args, device, data_root, **training):
    from scoresde.config import load_config
    config = load_config(str(ROOT / "configs/vp/ddpmpp_cifar10_continuous.py"))
    config.data.update(root=str(data_root), n_eval=64)
    config.training.update(batch_size=args.batch, device=str(device), n_iters=10**9, **training)
    config.sampling.update(n=4)
    if args.smoke:  # a network small enough for a CPU
        config.model.update(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=())
        config.model.ncsnpp.update(fir=False)
    return config


def train_row(args, device, data_root, name, **training):
    """(row, trainer): images/s over args.train_steps steps after warm-up, and the peak memory."""
    from scoresde.training import Trainer
    missing = [k for k in training if k not in config_for(args, device, data_root).training]
    if missing:
        return {"what": f"train {name}", "note": f"training.{missing[0]} is not in this version"}, None
    workdir = tempfile.mkdtemp(dir=data_root)  # kept until the end: the fp32 run is sampled afterwards
    trainer = Trainer(config_for(args, device, data_root, **training), workdir, progress_bar=False)
    start = time.perf_counter()
    for _ in range(args.warmup):
        trainer.train_step()
    sync(device)
    warm = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(args.train_steps):
        trainer.train_step()
    sync(device)
    seconds = (time.perf_counter() - start) / args.train_steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    trainer.close()
    return {"what": f"train {name}", "batch": args.batch, "seconds": seconds, "rate": f"{args.batch / seconds:.1f} img/s",
            "peak": peak, "note": f"warm-up {args.warmup} steps: {warm:.1f} s"}, trainer


def sample_rows(args, device, trainer):
    """One row per sampler: seconds per image, NFE, and the overhead over NFE forward passes."""
    run, b = trainer.run, args.sample_batch
    x = torch.randn(b, *run.shape, device=device)
    t = torch.full((b,), 0.5, device=device)
    net = run.model.eval()
    with torch.no_grad():
        net(x, t)
        sync(device)
        start = time.perf_counter()
        for _ in range(3):
            net(x, t)
        sync(device)
    forward = (time.perf_counter() - start) / 3
    rows = [{"what": "one forward pass", "batch": b, "seconds": forward, "rate": f"{forward / b * 1e3:.3f} ms/img"}]
    for name, options in SAMPLERS:
        sampler = run.sampler(name, args.steps, **options)
        run.sample(b, sampler, seed=0)  # warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sync(device)
        start = time.perf_counter()
        _, nfe = run.sample(b, sampler, seed=1)
        sync(device)
        seconds = time.perf_counter() - start
        label = name + "".join(f" {k}={v}" for k, v in options.items())
        rows.append({"what": f"sample {label}", "batch": b, "seconds": seconds, "nfe": nfe,
                     "rate": f"{seconds / b * 1e3:.2f} ms/img",
                     "peak": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
                     "note": f"overhead {seconds / (nfe * forward) - 1:+.1%} over {nfe} forward passes"})
    return rows


def table(rows) -> str:
    lines = ["| what | batch | s (per step or per batch) | rate | NFE | peak GiB | note |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        cell = lambda k, f="{}": f.format(r[k]) if r.get(k) is not None else ""  # noqa: E731
        lines.append(f"| {r['what']} | {cell('batch')} | {cell('seconds', '{:.4f}')} | {cell('rate')} | {cell('nfe')} | "
                     f"{cell('peak', '{:.2f}')} | {cell('note')} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128, help="training batch (default 128, the config's)")
    p.add_argument("--sample-batch", type=int, default=256, help="sampling batch (default 256)")
    p.add_argument("--steps", type=int, default=20, help="sampler steps (default 20)")
    p.add_argument("--train-steps", type=int, default=20, help="timed training steps per variant (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    p.add_argument("--smoke", action="store_true", help="CPU: a tiny network, 2 steps, to check the script runs")
    p.add_argument("--no-tests", action="store_true", help="skip the CUDA tests")
    p.add_argument("--out", default=None, help="also write the table (markdown) to this file")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if args.smoke:
        args.batch, args.sample_batch, args.steps, args.train_steps, args.warmup = 4, 4, 2, 2, 1
    gpu = torch.cuda.get_device_name(device) if cuda else "no CUDA device"
    print(f"device {device} ({gpu}), torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.get_num_threads()} CPU threads")
    if not cuda and not args.smoke:
        print("skipped: training images/s, sampling s/image, peak memory and the CUDA tests all need a CUDA device "
              "(--smoke runs the same code on a tiny network on the CPU)")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as data:
        root = write_cifar10(Path(data), max(args.batch, 64))
        row, trainer = train_row(args, device, root, "fp32")
        rows.append(row)
        precisions = ["bf16", "fp16"] if cuda else []
        if not cuda:
            print("skipped on the CPU: bf16 and fp16 training (autocast on CUDA)")
        for precision in precisions:
            rows.append(train_row(args, device, root, precision, mixed_precision=precision)[0])
        if cuda:
            rows.append(train_row(args, device, root, "compiled (fp32)", compile=True)[0])
        else:
            print("skipped on the CPU: compiled training (inductor takes ~45 s here even for the smoke network; "
                  "benchmarks/compile_speed.py measures it on a CPU)")
        rows += sample_rows(args, device, trainer)
    text = f"{gpu}, torch {torch.__version__}\n\n" + table(rows)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if cuda and not args.no_tests:
        print("\n== the CUDA variants of the tests")
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-k", "cuda", str(ROOT / "tests")], cwd=ROOT)
        return result.returncode
    if not cuda:
        print("skipped: the CUDA variants of the tests (no CUDA device)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
