"""`scoresde restore`: solve an inverse problem with a trained unconditional run (scoresde.inverse.solve).

The input holds clean images, which are observed as y = A x + σ_y ε (so the metrics have a ground truth), or
observations y themselves. Writes OUT/restored.npz (restored, observed, and truth when known), OUT/restore.png
(truth | observation, shown as A⁺y | restored) and OUT/metrics.json: PSNR and SSIM against the truth, consistency
‖A x − y‖ per image and, with labels and a labelled run, the accuracy of the run's feature classifier; each
with its standard error over images.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ._args import parse_options, positive_int

INPUT_KEYS = ("images", "x", "samples", "y")


def add_parser(sub):
    from .inverse import MASKS, METHODS
    p = sub.add_parser("restore", help="inpainting, super-resolution, deblurring, colourisation with a trained run",
                       description="Restore images with any inverse-problem method, e.g. scoresde restore --workdir "
                                   "runs/mnist --method ddrm --operator inpaint --input heldout --sigma-y 0.05")
    p.add_argument("--workdir", required=True, help="an unconditional run's folder")
    p.add_argument("--method", default="ddrm", choices=list(METHODS), help="the method (default ddrm)")
    p.add_argument("--operator", default="inpaint", choices=["inpaint", "downsample", "blur", "colorize"],
                   help="what is observed (default inpaint)")
    p.add_argument("--input", required=True, metavar="FILE.npz|heldout",
                   help="an .npz with clean images under 'images' (uint8, or floats in the model's range, as "
                        "scoresde sample writes them; optional 'labels'), or observations under 'y'; or 'heldout' "
                        "for the run's held-out images")
    p.add_argument("--sigma-y", type=float, default=0.0, help="observation noise σ_y in the model's units (default 0)")
    p.add_argument("--n", type=positive_int, default=None, help="restore only the first N images")
    p.add_argument("--mask", default="half", choices=list(MASKS),
                   help="inpaint: the upper half known, or all but a centre box (default half)")
    p.add_argument("--factor", type=positive_int, default=4, help="downsample: the factor (default 4)")
    p.add_argument("--blur-std", type=float, default=2.0, help="blur: the Gaussian kernel's std in pixels (default 2)")
    p.add_argument("--blur-size", type=positive_int, default=9, help="blur: the kernel's size (default 9)")
    p.add_argument("--sampler", default="ancestral", help="the sampler the method wraps (default ancestral)")
    p.add_argument("--steps", type=positive_int, default=100, help="grid times, the NFE (default 100)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="the method's own options, e.g. --option zeta=0.5 (dps), --option particles=16 (smc), "
                        "--option eta=0.85 (ddrm)")
    p.add_argument("--batch-size", type=positive_int, default=100, help="images per call (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--out", default=None, help="output folder (default WORKDIR/restore/<method>_<operator>)")


def load_input(path: str, run, n):
    """(truth or None, y or None, labels or None) from the --input value."""
    import numpy as np
    import torch
    if path == "heldout":
        truth, labels = run.data.eval_data, run.data.eval_labels
        return truth[:n], None, None if labels is None else labels[:n]
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"--input {path}: no such file")
    with np.load(p, allow_pickle=False) as f:
        key = next((k for k in INPUT_KEYS if k in f.files), None)
        if key is None:
            raise ValueError(f"--input {path} must hold clean images under one of {list(INPUT_KEYS[:3])} or "
                             f"observations under 'y'; it has {f.files}")
        array = torch.from_numpy(f[key][:n])
        labels = torch.from_numpy(f["labels"][:n]).long() if "labels" in f.files and f["labels"].size else None
    if key != "y" and array.dtype == torch.uint8:
        array = run.data.scale(array)
    if not array.is_floating_point():
        wants = "floats in the model's range" if key == "y" else "uint8 images or floats in the model's range"
        raise ValueError(f"--input {path}: '{key}' must be {wants}, got {array.dtype}")
    return (None, array.float(), labels) if key == "y" else (array.float(), None, labels)


def run(args):
    import numpy as np
    import torch
    from . import metrics
    from .inverse import build_operator
    from .plots import save_rows
    from .run import load_run

    if args.sigma_y < 0:
        raise ValueError(f"--sigma-y must be >= 0, got {args.sigma_y}")
    model = load_run(args.workdir, args.device)
    if len(model.shape) != 3:
        raise ValueError(f"scoresde restore works on image runs; this run's data has shape {model.shape}")
    op = build_operator(args.operator, model.shape, mask=args.mask, factor=args.factor, blur_std=args.blur_std,
                        blur_size=args.blur_size)
    truth, y, labels = load_input(args.input, model, args.n)
    if truth is not None and tuple(truth.shape[1:]) != model.shape:
        raise ValueError(f"--input images must have the run's shape {model.shape} per image, got "
                         f"{tuple(truth.shape[1:])}")
    options = parse_options(args.option)
    g = torch.Generator().manual_seed(args.seed)
    if y is None:
        y = op.A(truth.double()).float()
        y = y + args.sigma_y * torch.randn(y.shape, generator=g) * (op.A(torch.ones(1, *model.shape)) != 0)
    if tuple(y.shape[1:]) != op.out_shape:
        raise ValueError(f"--input observations 'y' must have shape [N, {', '.join(map(str, op.out_shape))}] for "
                         f"--operator {args.operator} on this run, got {tuple(y.shape)}")
    print(f"{model}; {args.method} on {args.operator} ({len(y)} images, σ_y = {args.sigma_y}), {args.sampler} with "
          f"{args.steps} steps", flush=True)
    start, parts, nfe = time.perf_counter(), [], 0
    for i in range(0, len(y), args.batch_size):
        sampler = model.sampler(args.sampler, args.steps, progress=True)
        x, nfe = model.restore(y[i:i + args.batch_size], op, args.method, args.sigma_y, sampler,
                               seed=args.seed + i, **options)
        parts.append(x.float().cpu())
        print(f"  {i + len(parts[-1])}/{len(y)} images, {time.perf_counter() - start:.0f} s", flush=True)
    x, seconds = torch.cat(parts), time.perf_counter() - start
    shown = op.pinv(y.double()).float()  # the observation, shown in image space
    residual = (op.A(x.double()) - y.double()).flatten(1).norm(dim=1)
    result = {"method": args.method, "operator": args.operator, "sigma_y": args.sigma_y, "nfe": nfe,
              "seconds": seconds, "images": len(x),
              "consistency": [residual.mean().item(), (residual.std() / len(x) ** 0.5).item() if len(x) > 1 else 0.0]}
    lo, hi = model.data.data_range
    if truth is not None:
        m = metrics.restoration_metrics(x.clamp(lo, hi), truth, data_range=hi - lo)
        result.update({k: list(v) for k, v in m.items()})
        if labels is not None and model.data.labels is not None:
            from .features import feature_classifier
            judge = feature_classifier(Path(args.workdir), model.data, model.data.labels, model.device)
            with torch.no_grad():
                right = (judge(x.clamp(lo, hi).to(model.device)).argmax(1).cpu() == labels).double()
            result["accuracy"] = [right.mean().item(), (right.std() / len(right) ** 0.5).item()]
    out = Path(args.out) if args.out else Path(args.workdir) / "restore" / f"{args.method}_{args.operator}"
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"restored": x.numpy(), "observed": y.numpy(), "nfe": nfe, "seconds": seconds}
    if truth is not None:
        arrays["truth"] = truth.numpy()
    np.savez(out / "restored.npz", **arrays)
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    rows = ({"truth": truth} if truth is not None else {}) | {"observed (A⁺y)": shown, args.method: x}
    picture = save_rows({k: v.clamp(lo, hi) for k, v in rows.items()}, model, out / "restore.png",
                        title=f"{args.method}, {args.operator}, σ_y = {args.sigma_y}, NFE {nfe}")
    shown_metrics = ", ".join(f"{k} {v[0]:.4g} ± {v[1]:.2g}" for k, v in result.items() if isinstance(v, list))
    print(f"{args.method}: NFE {nfe}, {seconds:.0f} s; {shown_metrics}; wrote {out / 'restored.npz'}, metrics.json"
          + (f" and {picture.name}" if picture else ""))
