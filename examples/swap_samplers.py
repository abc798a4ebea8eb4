"""Swap samplers on one score function: every sampler at several step budgets, one table.

The score here is exact (a 2-D Gaussian mixture, `scoresde.analytic`), so the error column measures
the sampler alone: the sliced Wasserstein distance to exact samples, whose floor (two exact sample
sets of this size) is printed first. Replace `score_fn` by `get_score_fn(model, sde, ...)` for a
trained network; nothing else changes.

    python examples/swap_samplers.py [--sde vp|subvp|ve] [--n 5000] [--steps 10,30,100]
"""
import argparse
import time

import torch

import scoresde
from scoresde.analytic import GaussianMixture
from scoresde.metrics import sliced_wasserstein
from scoresde.sampling import get_sampler

SAMPLERS = {  # label -> (registry name, options)
    "ancestral": ("ancestral", {}),
    "reverse_diffusion": ("reverse_diffusion", {}),
    "euler_maruyama": ("euler_maruyama", {}),
    "pc (rd + langevin)": ("pc", {"snr": 0.16}),
    "ode:euler": ("ode", {"method": "euler"}),
    "ode:heun": ("ode", {"method": "heun"}),
    "ode:dopri5 (adaptive)": ("ode", {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3}),
    "ddim (eta=0)": ("ddim", {}),
    "dpm_solver++ (2M)": ("dpm_solver", {}),
    "unipc (UniPC-2, bh2)": ("unipc", {}),
    "deis (3rd order)": ("deis", {}),
    "torchsde:euler": ("torchsde", {"method": "euler"}),
    "torchsde:srk": ("torchsde", {"method": "srk"}),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sde", default="vp", choices=["vp", "subvp", "ve"])
    parser.add_argument("--n", type=int, default=5000, help="samples per run")
    parser.add_argument("--steps", default="10,30,100", help="comma-separated step budgets")
    args = parser.parse_args()

    sde = {"vp": scoresde.VPSDE, "subvp": scoresde.subVPSDE, "ve": scoresde.VESDE}[args.sde]()
    data = GaussianMixture([0.1, 0.2, 0.3, 0.4], [[-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]],
                           torch.eye(2, dtype=torch.float64).expand(4, 2, 2) * 0.1)
    score_fn = data.score_fn(sde)  # the only thing a sampler sees
    reference = data.sample(args.n, torch.Generator().manual_seed(123)).float()
    floors = torch.tensor([sliced_wasserstein(data.sample(args.n, torch.Generator().manual_seed(s)).float(), reference)
                           for s in range(5)])
    print(f"SDE: {args.sde}; {args.n} samples. Sliced-Wasserstein floor (exact samples vs the same reference, "
          f"5 seeds): {floors.mean():.4f} ± {floors.std():.4f}; differences within that spread are noise.\n")
    print(f"| {'sampler':22s} | steps |   NFE | SW error | time (s) |")
    print(f"|{'-' * 24}|------:|------:|---------:|---------:|")
    for label, (name, options) in SAMPLERS.items():
        budgets = [None] if "adaptive" in label else [int(s) for s in args.steps.split(",")]
        for steps in budgets:
            sampler = get_sampler(name, progress=False, **options, **({} if steps is None else {"steps": steps}))
            start = time.perf_counter()
            x, nfe = sampler(score_fn, sde, (args.n, 2), generator=torch.Generator().manual_seed(0))
            seconds = time.perf_counter() - start
            print(f"| {label:22s} | {steps or '-':>5} | {nfe:5d} | {sliced_wasserstein(x, reference):8.4f} | {seconds:8.2f} |")


if __name__ == "__main__":
    main()
