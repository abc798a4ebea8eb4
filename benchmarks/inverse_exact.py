"""Every inverse-problem method against the exact posterior, on Gaussian and Gaussian-mixture priors with exact scores.

    OMP_NUM_THREADS=1 python benchmarks/inverse_exact.py [--samples 2000] [--observations 4] [--steps 100]

Problems (float64, VP-SDE, exact score):
    gauss8  N(μ, Σ) in 8-D with correlated coordinates; the first 4 observed (inpaint);
    gmm8    4 components in 8-D with unequal weights and covariances; y = A x + σ_y ε with a dense A of 3 rows.
For each σ_y in {0, 0.1}, each of `--observations` observations y (drawn from the model) and each method, at the same
NFE (RePaint: steps/r grid times with r = 4, so its NFE matches; SMC: NFE per particle, its cost is N times that):
    mean error   ‖E_samples[x] − E[x | y]‖, averaged over the observations;
    W2           (gauss8) between the samples' Gaussian fit and the exact posterior;
    SW1          (gmm8) sliced W1 between the samples and as many exact posterior samples;
    weights      (gmm8) total variation between the exact posterior component weights and the samples' mean
                 responsibilities under the exact posterior;
and the same figures for exact posterior samples of the same size (the floor: what sampling noise alone gives; for
the mean error its RMS √(tr Cov[x | y]/n), exactly).
Then the SMC sampler with N = 4, 16, 64, 256 particles: the same metrics, and the error of its self-normalised
estimate of E[x | y] from the weighted particles. Prints markdown tables (--out FILE also writes them).
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from scoresde import analytic, inverse, metrics
from scoresde.sampling import get_sampler
from scoresde.sde import VPSDE

F64 = torch.float64
METHODS = [("replacement", {}), ("repaint", {"resample": 4}), ("ilvr", {}), ("dps", {}), ("pigdm", {}),
           ("ddrm", {}), ("ddnm", {}), ("smc", {"particles": 16})]


def problems():
    g = torch.Generator().manual_seed(0)
    d = 8
    L = torch.randn(d, d, generator=g, dtype=F64) * 0.45
    gauss = analytic.GaussianMixture([1.0], torch.randn(1, d, generator=g, dtype=F64) * 0.5,
                                     (L @ L.T + 0.05 * torch.eye(d, dtype=F64))[None])
    mask = torch.zeros(d, dtype=F64)
    mask[:4] = 1
    Ls = torch.randn(4, d, d, generator=g, dtype=F64) * 0.25
    gmm = analytic.GaussianMixture(torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=F64),
                                   torch.randn(4, d, generator=g, dtype=F64) * 1.5,
                                   Ls @ Ls.transpose(1, 2) + 0.02 * torch.eye(d, dtype=F64))
    A = torch.randn(3, d, generator=g, dtype=F64) / math.sqrt(d)
    return {"gauss8": (gauss, lambda: inverse.Inpaint(mask)), "gmm8": (gmm, lambda: inverse.Dense(A))}


def observations(prior, op, sigma_y, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = prior.sample(n, generator=g)
    y = op.bind((prior.dim,)).A(x)
    rows = op.matrix((prior.dim,)).abs().sum(1) > 0  # noise where something is observed (not a mask's zeros)
    return y + sigma_y * torch.randn(y.shape, generator=g, dtype=F64) * rows


def gaussian_w2(x, post):
    m, C = x.mean(0), torch.cov(x.T)
    m2, C2 = post.mean(), post.cov()
    lam, Q = torch.linalg.eigh(C2)
    r = (Q * lam.clamp(min=0).sqrt()) @ Q.T
    lam, Q = torch.linalg.eigh(r @ C @ r)
    cross = (Q * lam.clamp(min=0).sqrt()) @ Q.T
    return math.sqrt(max(((m - m2) ** 2).sum().item() + torch.trace(C + C2 - 2 * cross).item(), 0.0))


def scores(x, post, gaussian, generator):
    """The metrics of samples x [n, D] against the exact posterior."""
    out = {"mean error": (x.mean(0) - post.mean()).norm().item()}
    if gaussian:
        out["W2"] = gaussian_w2(x, post)
    else:
        ref = post.sample(len(x), generator=generator)
        out["SW1"] = metrics.sliced_wasserstein(x, ref, p=1, n_projections=256, generator=generator)
        out["weights"] = 0.5 * (post.responsibilities(x).mean(0) - post.weights).abs().sum().item()
    return out


def run_method(prior, make_op, y, sigma_y, method, options, steps, samples, seed):
    op = make_op()
    sampler_steps = steps // options.get("resample", 1)
    sampler = get_sampler("ancestral", steps=sampler_steps, progress=False)
    start = time.perf_counter()
    sol = inverse.solve(prior.score_fn(VPSDE()), VPSDE(), y[None].expand(samples, -1).clone(), op, method=method,
                        sigma_y=sigma_y, sampler=sampler, generator=torch.Generator().manual_seed(seed), **options)
    return sol, time.perf_counter() - start


def average(rows):
    keys = rows[0].keys()
    return {k: sum(r[k] for r in rows) / len(rows) for k in keys}


def table(title, header, rows):
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=2000, help="posterior samples per observation")
    p.add_argument("--observations", type=int, default=4)
    p.add_argument("--steps", type=int, default=100, help="NFE of every method (per particle for smc)")
    p.add_argument("--sigmas", default="0,0.1", help="observation noise levels σ_y")
    p.add_argument("--particles", default="4,16,64,256", help="SMC particle counts for the convergence table")
    p.add_argument("--out", help="also write the tables to this markdown file")
    args = p.parse_args(argv)
    print(f"torch threads: {torch.get_num_threads()}; samples {args.samples} x {args.observations} observations; "
          f"NFE {args.steps}")
    text = []
    for name, (prior, make_op) in problems().items():
        gaussian = len(prior.weights) == 1
        for sigma_y in (float(s) for s in args.sigmas.split(",")):
            ys = observations(prior, make_op(), sigma_y, args.observations, seed=1)
            posts = [inverse.posterior(prior, make_op(), y, sigma_y, shape=(prior.dim,)) for y in ys]
            g = torch.Generator().manual_seed(2)
            floor = average([scores(post.sample(args.samples, generator=g), post, gaussian, g) for post in posts])
            # the mean error of n exact samples is known: its RMS is √(tr Cov[x | y] / n)
            floor["mean error"] = sum(math.sqrt(torch.trace(post.cov()).item() / args.samples)
                                      for post in posts) / len(posts)
            cols = list(floor)
            rows = [["exact samples (floor)", "-", *(f"{floor[c]:.4f}" for c in cols), "-"]]
            for method, options in METHODS:
                res, wall = [], 0.0
                for i, (y, post) in enumerate(zip(ys, posts)):
                    sol, seconds = run_method(prior, make_op, y, sigma_y, method, options, args.steps, args.samples,
                                              seed=10 + i)
                    res.append(scores(sol[0], post, gaussian, g))
                    wall += seconds
                r = average(res)
                label = method + "".join(f" {k}={v}" for k, v in options.items())
                rows.append([label, sol[1], *(f"{r[c]:.4f}" for c in cols), f"{wall / len(ys):.2f}"])
                print(name, sigma_y, label, {k: round(v, 4) for k, v in r.items()}, flush=True)
            text.append(table(f"{name}, σ_y = {sigma_y:g}", ["method", "NFE", *cols, "seconds"], rows))
            curve = []
            for N in (int(n) for n in args.particles.split(",")):
                res, est = [], []
                for i, (y, post) in enumerate(zip(ys, posts)):
                    sol, _ = run_method(prior, make_op, y, sigma_y, "smc", {"particles": N}, args.steps,
                                        args.samples, seed=100 + i)
                    res.append(scores(sol[0], post, gaussian, g))
                    w = sol.info["log_weights"].exp()
                    estimate = (w[..., None] * sol.info["particles"]).sum(1)
                    est.append(((estimate - post.mean()) ** 2).sum(1).mean().sqrt().item())
                r = average(res)
                curve.append([N, *(f"{r[c]:.4f}" for c in cols), f"{sum(est) / len(est):.4f}"])
                print(name, sigma_y, "smc N =", N, {k: round(v, 4) for k, v in r.items()}, "RMSE of weighted mean",
                      round(sum(est) / len(est), 4), flush=True)
            text.append(table(f"{name}, σ_y = {sigma_y:g}: SMC by particles (NFE {args.steps} per particle)",
                              ["N", *cols, "RMSE of the weighted-particle E[x | y]"], curve))
    out = "\n".join(text)
    print("\n" + out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(out)


if __name__ == "__main__":
    main()
