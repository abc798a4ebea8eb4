"""PriorGrad's per-class prior against the standard N(0, I), at the same training steps (Lee et al. 2022).

Data: a class-conditional mixture of four 2-D Gaussians with different means and very different, anisotropic
scales (scoresde.analytic.GaussianMixture, so each class's exact score and samples are known). Two class-conditional
MLPs, identical seeds, batches and noise, train with DSM (λ = σ², ε-prediction) on a VP-SDE: one with the standard
prior, one with PriorGrad's per-class prior N(μ_k, diag σ_k²) measured on 5000 training samples. At each
evaluation step:
  excess loss   held-out loss (fixed noise and t) minus its floor, the loss of the exact score with the same draws:
                the two losses live in different norms (‖·‖ vs PriorGrad's Σ⁻¹ norm), their excesses are comparable;
  SW            sliced Wasserstein (p = 1) between 1000 DDIM samples (50 steps) per class and 1000 exact samples of
                the class, averaged over classes, mean ± standard error over 3 sampling seeds; the floor is the SW
                between two independent exact sample sets (same estimator).
One core, about a minute when the core is free:

    OMP_NUM_THREADS=1 python benchmarks/priorgrad.py [--steps 100,300,1000,3000] [--out docs/results]
"""
import argparse
import json
import time
from pathlib import Path

import torch

import scoresde
from scoresde.analytic import GaussianMixture
from scoresde.losses import DSMLoss
from scoresde.metrics import sliced_wasserstein
from scoresde.models import MLP
from scoresde.parameterization import get_score_fn
from scoresde.prior import estimate_prior
from scoresde.sampling import get_sampler

F32 = torch.float32


def mixture() -> GaussianMixture:
    """Four classes: means far apart, stds from 0.05 to 0.8, two of them rotated and anisotropic."""
    def rotated(s1, s2, angle):
        c, s = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
        R = torch.tensor([[c, -s], [s, c]])
        return R @ torch.diag(torch.tensor([s1**2, s2**2])) @ R.T
    covs = torch.stack([rotated(0.8, 0.1, 0.6), rotated(0.05, 0.05, 0.0), rotated(0.5, 0.2, -1.0),
                        rotated(0.3, 0.3, 0.0)]).double()
    return GaussianMixture([0.25] * 4, [[-3.0, -2.0], [3.0, -3.0], [-2.0, 3.0], [2.5, 2.5]], covs)


def class_score(data: GaussianMixture, sde, y):
    """The exact class-conditional score of x under `sde` (whose prior, if any, is already given the labels y)."""
    mu = sde.unwhiten(torch.zeros(len(y), data.dim, dtype=torch.float64))  # μ of each sample (0 for N(0, I))
    Sigma = torch.diag_embed((sde.unwhiten(torch.ones_like(mu)) - mu) ** 2)  # diag(σ_k²) (I for N(0, I))

    def score(x, t):
        x64 = x.double()
        alpha, sigma = (v.double() for v in sde.marginal_coeffs(t))
        m_t = alpha[:, None] * data.means[y] + (1 - alpha[:, None]) * mu
        C_t = alpha[:, None, None] ** 2 * data.covs[y] + sigma[:, None, None] ** 2 * Sigma
        return -torch.linalg.solve(C_t, (x64 - m_t)[..., None])[..., 0].to(x.dtype)
    return score


def train_and_measure(data, prior, steps_list, args):
    sde = scoresde.VPSDE() if prior is None else scoresde.VPSDE().with_prior(prior)
    torch.manual_seed(0)
    model = MLP(dim=2, hidden=args.hidden, layers=3, emb_dim=32, time_scale=1000.0, num_classes=4)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss = DSMLoss(sde, "simple")
    g_eval = torch.Generator().manual_seed(123)
    x_eval, y_eval = data.sample(args.n_eval, g_eval, dtype=F32, return_labels=True)
    t_eval = 1e-5 + (1 - 1e-5) * torch.rand(args.n_eval, generator=g_eval)
    z_eval = torch.randn(args.n_eval, 2, generator=g_eval)
    sde_eval = sde.given(y_eval)
    floor = DSMLoss(sde_eval).per_sample(class_score(data, sde_eval, y_eval), x_eval, t=t_eval, noise=z_eval)
    rows, step, start = [], 0, time.perf_counter()
    for target in steps_list:
        model.train()
        while step < target:
            g = torch.Generator().manual_seed(10_000 + step)
            x, y = data.sample(args.batch, g, dtype=F32, return_labels=True)
            sde_b = sde.given(y)
            score = get_score_fn(model, sde_b, "eps")
            value = DSMLoss(sde_b)(lambda x_, t_: score(x_, t_, y), x, g)
            opt.zero_grad()
            value.backward()
            opt.step()
            step += 1
        model.eval()
        with torch.no_grad():
            score = get_score_fn(model, sde_eval, "eps")
            held = DSMLoss(sde_eval).per_sample(lambda x_, t_: score(x_, t_, y_eval), x_eval, t=t_eval, noise=z_eval)
            excess = held - floor
            sws = [quality(data, sde, model, seed) for seed in range(3)]
        sw = torch.tensor(sws)
        rows.append({"step": step, "excess_loss": excess.mean().item(), "excess_loss_se": excess.std().item() / args.n_eval**0.5,
                     "sw": sw.mean().item(), "sw_se": sw.std().item() / len(sw) ** 0.5})
        print(f"  {'priorgrad' if prior is not None else 'standard '} step {step:5d}: excess loss "
              f"{rows[-1]['excess_loss']:.4f} ± {rows[-1]['excess_loss_se']:.4f}, SW {rows[-1]['sw']:.4f} ± "
              f"{rows[-1]['sw_se']:.4f}  ({time.perf_counter() - start:.0f} s)", flush=True)
    return rows


def quality(data, sde, model, seed, n=1000):
    """Mean over classes of SW(model samples of class k, exact samples of class k)."""
    out = []
    for k in range(4):
        y = torch.full((n,), k)
        sde_k = sde.given(y)
        score = get_score_fn(model, sde_k, "eps")
        x, _ = get_sampler("ddim", steps=50, progress=False)(lambda x_, t_: score(x_, t_, y), sde_k, (n, 2),
                                                             generator=torch.Generator().manual_seed(seed))
        exact = data.component(k).sample(n, torch.Generator().manual_seed(1000 + seed), dtype=F32)
        out.append(sliced_wasserstein(x, exact, generator=torch.Generator().manual_seed(seed)))
    return sum(out) / len(out)


def sw_floor(data, n=1000):
    vals = []
    for seed in range(3):
        vals.append(sum(sliced_wasserstein(data.component(k).sample(n, torch.Generator().manual_seed(2000 + seed), dtype=F32),
                                           data.component(k).sample(n, torch.Generator().manual_seed(3000 + seed), dtype=F32),
                                           generator=torch.Generator().manual_seed(seed)) for k in range(4)) / 4)
    v = torch.tensor(vals)
    return v.mean().item(), v.std().item() / len(v) ** 0.5


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", default="100,300,1000,3000")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--n-eval", type=int, default=4000)
    p.add_argument("--out", default="docs/results")
    args = p.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    data = mixture()
    x, y = data.sample(5000, torch.Generator().manual_seed(7), return_labels=True)
    prior = estimate_prior(x, y, num_classes=4)
    results = {"standard": train_and_measure(data, None, steps, args),
               "priorgrad": train_and_measure(data, prior, steps, args)}
    floor, floor_se = sw_floor(data)
    results["sw_floor"], results["sw_floor_se"] = floor, floor_se
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "priorgrad.json").write_text(json.dumps(results, indent=2))
    print(f"\nSW floor (exact vs exact): {floor:.4f} ± {floor_se:.4f}\n")
    print("| steps | excess loss, standard | excess loss, PriorGrad | SW, standard | SW, PriorGrad |")
    print("|---:|---:|---:|---:|---:|")
    for a, b in zip(results["standard"], results["priorgrad"]):
        print(f"| {a['step']} | {a['excess_loss']:.4f} ± {a['excess_loss_se']:.4f} | {b['excess_loss']:.4f} ± "
              f"{b['excess_loss_se']:.4f} | {a['sw']:.4f} ± {a['sw_se']:.4f} | {b['sw']:.4f} ± {b['sw_se']:.4f} |")
    plot(results, out / "priorgrad_toy.png")


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for name, style in (("standard", "o-"), ("priorgrad", "s-")):
        rows = results[name]
        steps = [r["step"] for r in rows]
        axes[0].errorbar(steps, [r["excess_loss"] for r in rows], [r["excess_loss_se"] for r in rows], fmt=style,
                         label=name)
        axes[1].errorbar(steps, [r["sw"] for r in rows], [r["sw_se"] for r in rows], fmt=style, label=name)
    axes[1].axhline(results["sw_floor"], color="gray", ls="--", label="floor (exact vs exact)")
    for ax, title in zip(axes, ("held-out loss − exact-score floor", "sliced Wasserstein to exact samples")):
        ax.set(xscale="log", yscale="log", xlabel="training steps", title=title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
