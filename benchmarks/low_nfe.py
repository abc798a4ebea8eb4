"""Low-NFE sampling: scoresde side by side with diffusers' schedulers, k-diffusion's samplers and azula's, on exact scores.

Every library samples the VP-SDE with DDPM's linear β (0.1 … 20, i.e. β_i = linspace(1e-4, 0.02, 1000)) for
exact-score problems, from the same x_T, at equal counted NFE. Each solver is handed the exact x̂_0 / ε at
the noise level its own update formula assumes (diffusers: its σ or ᾱ of the step; k-diffusion: σ; azula: t),
so only the solver and the time grid differ. For each problem and budget the table gives each library's best
configuration, scoresde's solvers with all defaults, and the ratio of scoresde's best to the best peer (≤ 1:
scoresde wins), and the recommended solver's defaults against the best peer and scoresde's best.

    python benchmarks/low_nfe.py [--n 20000] [--budgets 3,4,5,6,8,10,20,50] [--problems gauss16,ring8,...] [--json FILE]
    python benchmarks/low_nfe.py --libraries scoresde --budgets 50 --json a.json   # one part of a long run ...
    python benchmarks/low_nfe.py --tables a.json b.json ...                          # ... and the tables of all parts
    python benchmarks/low_nfe.py --optimized --budgets 5,10                          # grid="optimized" against fixed grids

Peers are benchmark-only dependencies: `pip install diffusers`, `pip install --no-deps k-diffusion torchdiffeq`
(only k_diffusion/sampling.py is loaded) and `pip install --no-deps azula einops`; a library that does not
import is left out. Metrics: on the Gaussians, every deterministic solver runs on x_T ∈ {0, e_1, …, e_d},
which gives its affine map and the exact W₂ to the truth (Bures formula; no sampling noise, floor 0);
on the mixtures, sliced W₁ (256 fixed directions) against n exact samples, and "floor" is the metric of n
exact samples, the value a perfect sampler would get.
"""
from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch

import scoresde
from scoresde.analytic import GaussianMixture
from scoresde.sampling import GRIDS, get_sampler

F64 = torch.float64
SDE = scoresde.VPSDE()  # β_min = 0.1, β_max = 20, N = 1000: DDPM's linear schedule


# -- problems --------------------------------------------------------------------------------------------
def gauss16():
    """16-D Gaussian, anisotropic (eigenvalues 0.01 … 2, log-spaced) and rotated, mean ~ N(0, 0.25 I)."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(16, generator=g, dtype=F64) * 0.5
    Q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=F64))
    lam = torch.logspace(-2, math.log10(2), 16, dtype=F64)
    return GaussianMixture([1.0], mu[None], ((Q * lam) @ Q.T)[None])


def ring8():
    """2-D: 8 Gaussians (std 0.1) on a circle of radius 2, weights ∝ 1, 2, …, 8."""
    angle = torch.arange(8, dtype=F64) * (2 * math.pi / 8)
    means = 2 * torch.stack([angle.cos(), angle.sin()], 1)
    return GaussianMixture(torch.arange(1, 9, dtype=F64) / 36, means, torch.eye(2, dtype=F64).expand(8, 2, 2) * 0.01)


def gmm8d():
    """8-D: 4 anisotropic Gaussians (eigenvalues 0.005 … 0.3) with weights 0.4, 0.3, 0.2, 0.1, means ~ N(0, I)."""
    g = torch.Generator().manual_seed(1)
    means = torch.randn(4, 8, generator=g, dtype=F64)
    Q = torch.linalg.qr(torch.randn(4, 8, 8, generator=g, dtype=F64))[0]
    lam = torch.logspace(math.log10(0.005), math.log10(0.3), 8, dtype=F64)
    return GaussianMixture([0.4, 0.3, 0.2, 0.1], means, (Q * lam) @ Q.transpose(1, 2))


def scales():
    """2-D: 3 Gaussians of very different scales, std 0.02, 0.3 and 1.5 (weights 0.3, 0.4, 0.3), means on a line."""
    means = torch.tensor([[-1.5, 0.0], [1.0, 0.5], [0.5, -1.0]], dtype=F64)
    std = torch.tensor([0.02, 0.3, 1.5], dtype=F64)
    return GaussianMixture([0.3, 0.4, 0.3], means, torch.eye(2, dtype=F64) * std[:, None, None] ** 2)


def gauss64():
    """64-D Gaussian, eigenvalues 1e-4 … 10 (log-spaced, five decades), rotated, mean ~ N(0, 0.25 I)."""
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(64, generator=g, dtype=F64) * 0.5
    Q, _ = torch.linalg.qr(torch.randn(64, 64, generator=g, dtype=F64))
    lam = torch.logspace(-4, 1, 64, dtype=F64)
    return GaussianMixture([1.0], mu[None], ((Q * lam) @ Q.T)[None])


PROBLEMS = {"gauss16": (gauss16, "W2"), "gauss64": (gauss64, "W2"), "ring8": (ring8, "SW1"), "gmm8d": (gmm8d, "SW1"),
            "scales": (scales, "SW1")}


def sliced_w1(ref, n_projections=256):
    """scoresde.metrics.sliced_wasserstein (p = 1, same directions) against a fixed reference sorted once."""
    theta = torch.randn(ref.shape[1], n_projections, generator=torch.Generator().manual_seed(0), dtype=F64)
    theta = (theta / theta.norm(dim=0)).numpy()
    ref_sorted = np.sort(ref.numpy() @ theta, axis=0)
    return lambda x: float(np.abs(np.sort(x.numpy() @ theta, axis=0) - ref_sorted).mean())


class BasisVPSDE(scoresde.VPSDE):
    """The VP-SDE whose prior draw is the basis {0, e_1, …, e_d}: an affine sampler's output gives its map exactly."""

    def prior_sampling(self, shape, generator=None, device=None, dtype=None):
        return basis(shape[1], dtype)


def basis(d, dtype=F64):
    return torch.cat([torch.zeros(1, d, dtype=dtype), torch.eye(d, dtype=dtype)])


def exact_w2(data):
    """W₂ between N(b, M Mᵀ), from a deterministic solver's outputs y on the basis (b = y_0, M e_i = y_i − y_0),
    and the data's Gaussian (Dowson & Landau 1982): for Gaussian data every deterministic solver is affine in x_T."""
    mu, S = data.mean(), data.cov()
    e, V = torch.linalg.eigh(S)
    root = (V * e.clamp(min=0).sqrt()) @ V.T

    def w2(y):
        b, M = y[0], (y[1:] - y[0]).T
        C = M @ M.T
        cross = torch.linalg.eigvalsh(root @ C @ root).clamp(min=0).sqrt().sum()
        return math.sqrt(max((((b - mu) ** 2).sum() + S.trace() + C.trace() - 2 * cross).item(), 0.0))
    return w2


def metric_fn(data, kind, n):
    """The problem's metric; a run with non-finite samples scores inf (diffusers' UniPC bh1 divides by B(h) = h = ∞
    on its last step to σ = 0)."""
    value = exact_w2(data) if kind == "W2" else sliced_w1(data.sample(n, generator=torch.Generator().manual_seed(12345)))
    return lambda x: value(x) if bool(torch.isfinite(x).all()) else math.inf


def x0_at(data, x, alpha, sigma):
    """Exact E[x_0 | x] for x = α x_0 + σ z, with α, σ scalars or per-sample [B]."""
    alpha, sigma = (torch.as_tensor(v, dtype=x.dtype).expand(x.shape[0]) for v in (alpha, sigma))
    return (x + sigma[:, None] ** 2 * data.score_at(x, alpha, sigma)) / alpha[:, None]


# -- scoresde --------------------------------------------------------------------------------------------
EPS = (1e-3, 1e-2, 1e-1)  # last time of the grid, before the final Tweedie step; 1e-3 is the default
MULTISTEP = ([("dpm_solver", {"order": 3}), ("deis", {"order": 3}), ("dpm_solver_sde", {})]
             + [("ipndm", {"order": 3}), ("ipndm", {"order": 4}), ("ipndm", {"order": 3, "variable_step": True})]
             + [("unipc", {"order": p, "variant": v}) for p in (2, 3) for v in ("bh1", "bh2")])
# (name, options, grid, eps): the multistep solvers on every grid and eps. DPM-Solver++(2M), DDIM and EDM's Heun
# equal k-diffusion's sample_dpmpp_2m, sample_euler and sample_heun on the same grid (checked by `parity`),
# so 2M runs on the k-diffusion side only and DDIM and Heun once each, for reference.
SCORESDE = ([(n, o, g, e) for g, e, (n, o) in itertools.product(GRIDS, EPS, MULTISTEP)]
            + [(n, {}, g, 1e-3) for n in ("ddim", "edm") for g in GRIDS])
DEFAULTS = ("unipc", "dpm_solver", "deis", "ipndm")  # shown with all their defaults (grid, order, eps) as well
STOCHASTIC = ("dpm_solver_sde", "dpmpp_2m_sde")  # left out on the Gaussians, whose exact metric needs an affine solver


def prior(n, dim, seed):
    """x_T: exactly the draw scoresde's samplers make from torch.Generator().manual_seed(seed)."""
    return SDE.prior_sampling((n, dim), generator=torch.Generator().manual_seed(seed), dtype=F64)


def run_scoresde(data, n, budget, name, options, seed, sde=SDE, **extra):
    steps = (budget + 1) // 2 if name == "edm" else budget  # edm: 2 NFE per step; its last NFE is Tweedie's
    sampler = get_sampler(name, steps=steps, progress=False, **options, **extra)
    n = data.dim + 1 if isinstance(sde, BasisVPSDE) else n
    return sampler(lambda x, t: data.score(SDE, x, t), sde, (n, data.dim), generator=torch.Generator().manual_seed(seed),
                   dtype=F64)


def grid_sigmas(grid, steps, eps):
    """σ = σ_t/α_t on scoresde's named grid from T to eps (the grids k-diffusion gets too)."""
    ts = get_sampler("ddim", steps=steps, grid=grid, eps=eps).time_grid(SDE)
    alpha, sigma = SDE.marginal_coeffs(ts)
    return sigma / alpha


# -- diffusers -------------------------------------------------------------------------------------------
DDPM = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
KARRAS = {"use_karras_sigmas": True}
DIFFUSERS = ([("DDIMScheduler", {"timestep_spacing": s, "clip_sample": False}) for s in ("leading", "trailing", "linspace")]
             + [("DPMSolverMultistepScheduler", {"solver_order": o, **g}) for o in (2, 3)
                for g in ({}, KARRAS, {"use_lu_lambdas": True})]
             + [("UniPCMultistepScheduler", {"solver_order": o, "solver_type": v, **g}) for o in (2, 3)
                for v in ("bh1", "bh2") for g in ({}, KARRAS)]
             + [("DEISMultistepScheduler", {"solver_order": o, **g}) for o in (2, 3) for g in ({}, KARRAS)]
             + [(c, g) for c in ("EulerDiscreteScheduler", "HeunDiscreteScheduler") for g in ({}, KARRAS)])


def run_diffusers(lib, data, z, budget, cls_name, options):
    """The largest num_inference_steps whose model calls fit the budget; the exact ε at the scheduler's noise level."""
    for steps in range(budget, 0, -1):
        sched = getattr(lib, cls_name)(**DDPM, **options)
        sched.set_timesteps(steps)
        if len(sched.timesteps) <= budget:
            break
    x, nfe = z * sched.init_noise_sigma, 0
    for t in sched.timesteps:
        inp = sched.scale_model_input(x, t)  # the VP-scaled x_t for every scheduler here
        if hasattr(sched, "sigmas"):
            s = sched.sigmas[sched.step_index if sched.step_index is not None else 0].double()
            alpha, sigma = 1 / (1 + s**2).sqrt(), s / (1 + s**2).sqrt()
        else:  # DDIM: ᾱ of the integer timestep
            abar = sched.alphas_cumprod[int(t)].double()
            alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
        eps = (inp - alpha * x0_at(data, inp, alpha, sigma)) / sigma
        nfe += 1
        x = sched.step(eps, t, x).prev_sample
    return x, nfe


# -- k-diffusion -----------------------------------------------------------------------------------------
# (function, options, grid, eps): scoresde's grids and eps for every k-diffusion multistep sampler (3M with
# eta = 0 is its third-order ODE solver); sample_euler and sample_heun once each, for reference.
KDIFF = ([(f, o, g, e) for g, e, (f, o) in itertools.product(GRIDS, EPS, [
    ("sample_lms", {}), ("sample_dpmpp_2m", {}), ("sample_dpmpp_3m_sde", {"eta": 0.0}), ("sample_dpmpp_2m_sde", {})])]
         + [("sample_euler", {}, "quadratic", 1e-3), ("sample_heun", {}, "karras", 1e-3)])


def load_k_diffusion():
    """k_diffusion/sampling.py alone: the package's __init__ needs torchvision, its utils only append_dims here."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None:
        raise ImportError("k-diffusion is not installed")
    pkg = types.ModuleType("kdiff_bench")
    pkg.__path__ = list(spec.submodule_search_locations)
    utils = types.ModuleType("kdiff_bench.utils")
    utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
    sys.modules.update({"kdiff_bench": pkg, "kdiff_bench.utils": utils})
    file = Path(pkg.__path__[0]) / "sampling.py"
    module_spec = importlib.util.spec_from_file_location("kdiff_bench.sampling", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def run_k_diffusion(kd, data, z, budget, fn, options, grid, eps, seed):
    steps = (budget + 1) // 2 if fn == "sample_heun" else budget
    sigmas = torch.cat([grid_sigmas(grid, steps, eps), torch.zeros(1, dtype=F64)])
    nfe = [0]

    def denoiser(x, s):
        nfe[0] += 1
        alpha = 1 / (1 + s**2).sqrt()
        return x0_at(data, alpha[:, None] * x, alpha, alpha * s)

    if fn.endswith("_sde"):  # i.i.d. increments, the same law on a fixed grid as its Brownian tree, and far cheaper
        g = torch.Generator().manual_seed(seed)
        options = {**options, "noise_sampler": lambda sigma, sigma_next: torch.randn(z.shape, generator=g, dtype=z.dtype)}
    x = getattr(kd, fn)(denoiser, z * (1 + sigmas[0] ** 2).sqrt(), sigmas, disable=True, **options)
    return x, nfe[0]


# -- azula -----------------------------------------------------------------------------------------------
# (class, options, grid, eps): azula's Adams–Bashforth family (z: ε in σ/α, v: v in σ/(α+σ), zE/xE: exponential AB in
# log σ/α on ε or x̂_0, i.e. DPM-Solver and DPM-Solver++ multistep) on scoresde's grids, DDIM and Heun for reference.
# REABSampler is left out: its step (azula 0.11.1, sample.py:944) scales the integral by √(α_s² + σ_t²) where its
# derivation has σ_s, which measures first order.
AZULA = ([(c, {"order": o}, g, e) for g, e, c, o in itertools.product(GRIDS, EPS, ("zABSampler", "vABSampler",
                                                                              "zEABSampler", "xEABSampler"), (2, 3))]
         + [("DDIMSampler", {}, "quadratic", 1e-3), ("HeunSampler", {}, "karras", 1e-3)])


def load_azula():
    import azula.denoise
    import azula.noise
    import azula.sample

    class LinearVP(azula.noise.Schedule):
        """The VP-SDE's α_t, σ_t with DDPM's linear β, as scoresde.VPSDE has them."""

        def __call__(self, t):
            return SDE.marginal_coeffs(t)

    return azula, LinearVP()


def run_azula(az, data, z, budget, cls_name, options, grid, eps):
    """azula's sampler on scoresde's grid to eps (its last point), then x̂_0 there: the same final step as scoresde's."""
    azula, schedule = az
    calls = 2 if cls_name == "HeunSampler" else 1  # Heun evaluates twice per step (the last at eps too)
    steps = max((budget - 1) // calls, 1)
    ts = get_sampler("ddim", steps=steps + 1, grid=grid, eps=eps).time_grid(SDE)
    nfe = [0]

    class Exact(azula.denoise.Denoiser):
        def __init__(self):
            super().__init__()
            self.schedule = schedule

        def forward(self, x_t, t, **kwargs):
            nfe[0] += 1
            alpha, sigma = (v.expand(x_t.shape[0]) for v in self.schedule(t))
            return azula.denoise.DiracPosterior(mean=x0_at(data, x_t, alpha, sigma))

    sampler_cls = getattr(azula.sample, cls_name)
    grid_cls = type("OnGrid", (sampler_cls,), {"timesteps": property(lambda self: ts)})
    denoiser = Exact()
    sampler = grid_cls(denoiser, steps=steps, start=float(ts[0]), stop=float(ts[-1]), silent=True, dtype=F64, **options)
    x = sampler(z)  # the same x_T as every library
    return denoiser(x, ts[-1]).mean, nfe[0]


# -- the table -------------------------------------------------------------------------------------------
def label(name, options, grid=None, eps=None):
    opts = ",".join(f"{k.replace('use_', '').replace('_sigmas', '')}={v}" for k, v in options.items())
    return f"{name}({opts})" + (f"@{grid}" if grid else "") + (f",eps={eps:g}" if eps else "")


def parity(kd, data, seed):
    """Same grid, same x_T: scoresde and k-diffusion must agree to rounding (1e-6 asked)."""
    z, out = prior(64, data.dim, seed), []
    for ours, opts, theirs in [("ddim", {}, "sample_euler"), ("dpm_solver", {"order": 2, "lower_order_final": False},
                                                              "sample_dpmpp_2m"), ("edm", {}, "sample_heun")]:
        budget = 9 if ours == "edm" else 10
        x, _ = run_scoresde(data, 64, budget, ours, {**opts, "grid": "karras", "eps": SDE.sampling_eps}, seed)
        y, _ = run_k_diffusion(kd, data, z, budget, theirs, {}, "karras", SDE.sampling_eps, seed)
        out.append(f"{ours} vs k-diffusion {theirs}: max |dx| = {(x - y).abs().max().item():.1e}")
    return out


def parity_azula(az, data, seed):
    """azula's exponential Adams–Bashforth of order 1 is DDIM: the same x from the same x_T on the same grid."""
    z = prior(64, data.dim, seed)
    x, _ = run_scoresde(data, 64, 10, "ddim", {"grid": "karras", "eps": SDE.sampling_eps}, seed)
    y, _ = run_azula(az, data, z, 10, "zEABSampler", {"order": 1}, "karras", SDE.sampling_eps)
    return f"ddim vs azula zEAB(order=1): max |dx| = {(x - y).abs().max().item():.1e}"


def optimized_rows(problem, budgets, n, seed, log=print):
    """GITS' optimized grid against the best fixed grid at each eps, for DDIM, DPM-Solver++(3M) and iPNDM."""
    make, kind = PROBLEMS[problem]
    data = make()
    metric = metric_fn(data, kind, n)
    sde = BasisVPSDE() if kind == "W2" else SDE
    score = lambda x, t: data.score(SDE, x, t)  # noqa: E731
    rows = []
    for budget, (name, options), eps in itertools.product(budgets, [("ddim", {}), ("dpm_solver", {"order": 3}),
                                                                     ("ipndm", {"order": 3})], EPS):
        fixed = {g: metric(run_scoresde(data, n, budget, name, {**options, "grid": g}, seed, sde, eps=eps)[0]) for g in GRIDS}
        sampler = get_sampler(name, steps=budget, eps=eps, progress=False, **options)
        ts = scoresde.sampling.optimized_grid(sampler, score, SDE, (data.dim,), eps=eps, dtype=F64, log=lambda line: None)
        value = metric(run_scoresde(data, n, budget, name, {**options, "ts": ts}, seed, sde)[0])
        grid = min(fixed, key=fixed.get)
        rows.append({"problem": problem, "budget": budget, "solver": label(name, options), "eps": eps,
                     "fixed": fixed[grid], "fixed_grid": grid, "optimized": value})
        log(f"| {problem} | {budget} | {label(name, options)} | {eps:g} | {fixed[grid]:.4f} ({grid}) | {value:.4f} | "
            f"{value / fixed[grid]:.3f} |")
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--budgets", default="3,4,5,6,8,10,20,50")
    p.add_argument("--problems", default=",".join(PROBLEMS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--libraries", default="scoresde,diffusers,k-diffusion,azula", help="run only these (to split a long run); 'defaults' runs only the solvers' all-defaults rows")
    p.add_argument("--json", default=None, help="write every configuration's result here")
    p.add_argument("--tables", nargs="+", default=None, help="print the tables of saved --json files and stop")
    p.add_argument("--optimized", action="store_true",
                   help="only compare grid='optimized' with the best fixed grid (DDIM, DPM-Solver++(3M), iPNDM)")
    args = p.parse_args()
    if args.optimized:
        torch.set_num_threads(1)
        print(f"torch threads: {torch.get_num_threads()}; n = {args.n}\n| problem | NFE | solver | eps | best fixed grid "
              "| optimized | ratio |\n|---|---:|---|---:|---:|---:|---:|")
        rows = [r for problem in args.problems.split(",")
                for r in optimized_rows(problem, [int(b) for b in args.budgets.split(",")], args.n, args.seed)]
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return
    if args.tables:
        # a later file's row replaces an earlier one of the same problem, budget, library and configuration
        rows = list({(r["problem"], r["budget"], r["library"], r["config"]): r
                     for f in args.tables for r in json.loads(Path(f).read_text())}.values())
        for problem in dict.fromkeys(r["problem"] for r in rows):
            part = [r for r in rows if r["problem"] == problem]
            print_table(problem, part[0]["metric"], part, sorted({r["budget"] for r in part}))
        return
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", module="torchsde")  # k-diffusion's float32 Brownian tree ends, harmless here
    budgets = [int(b) for b in args.budgets.split(",")]
    libraries, peers = args.libraries.split(","), {}
    try:
        import diffusers
        peers["diffusers"] = diffusers
        print(f"diffusers {diffusers.__version__}")
    except Exception as e:  # noqa: BLE001 -- a peer that does not import is left out
        print(f"diffusers left out: {e}")
    try:
        peers["k-diffusion"] = load_k_diffusion()
    except Exception as e:  # noqa: BLE001
        print(f"k-diffusion left out: {e}")
    try:
        peers["azula"] = load_azula()
        print(f"azula {peers['azula'][0].__version__}")
    except Exception as e:  # noqa: BLE001
        print(f"azula left out: {e}")
    print(f"torch threads: {torch.get_num_threads()}")
    rows, start = [], time.perf_counter()
    for problem in args.problems.split(","):
        make, kind = PROBLEMS[problem]
        data = make()
        metric = metric_fn(data, kind, args.n)
        exact = kind == "W2"  # deterministic solvers on the basis: the sampled law exactly, no floor
        sde = BasisVPSDE() if exact else SDE
        z = basis(data.dim) if exact else prior(args.n, data.dim, args.seed)
        if exact:
            floor = "0 (exact)"
        else:
            floors = torch.tensor([metric(data.sample(args.n, generator=torch.Generator().manual_seed(777 + i)))
                                   for i in range(5)])
            floor = f"{floors.mean():.4f} ± {floors.std():.4f}"
        keep = lambda name: not (exact and name.startswith(STOCHASTIC))  # noqa: E731
        if "k-diffusion" in peers and "scoresde" in libraries:
            print(f"{problem} parity: " + "; ".join(parity(peers["k-diffusion"], data, args.seed)))
        if "azula" in peers and "scoresde" in libraries:
            print(f"{problem} parity: " + parity_azula(peers["azula"], data, args.seed))
        for budget in budgets:
            def add(library, config, result):
                x, nfe = result[:2]
                rows.append({"problem": problem, "metric": kind, "budget": budget, "library": library, "config": config,
                             "nfe": nfe, "value": metric(x), "floor": floor})
            for name, options, grid, eps in SCORESDE if "scoresde" in libraries else []:
                if keep(name):
                    add("scoresde", label(name, options, grid, eps),
                        run_scoresde(data, args.n, budget, name, {**options, "grid": grid}, args.seed, sde, eps=eps))
            for name in DEFAULTS if "scoresde" in libraries or "defaults" in libraries else []:
                add(f"{name}()", f"{name}()", run_scoresde(data, args.n, budget, name, {}, args.seed, sde))
            if "diffusers" in peers and "diffusers" in libraries:
                for cls_name, options in DIFFUSERS:
                    add("diffusers", label(cls_name.replace("Scheduler", ""), options),
                        run_diffusers(peers["diffusers"], data, z, budget, cls_name, options))
            if "k-diffusion" in peers and "k-diffusion" in libraries:
                for fn, options, grid, eps in filter(lambda c: keep(c[0][len("sample_"):]), KDIFF):
                    add("k-diffusion", label(fn.replace("sample_", ""), options, grid, eps),
                        run_k_diffusion(peers["k-diffusion"], data, z, budget, fn, options, grid, eps, args.seed))
            if "azula" in peers and "azula" in libraries:
                for cls_name, options, grid, eps in AZULA:
                    add("azula", label(cls_name.replace("Sampler", ""), options, grid, eps),
                        run_azula(peers["azula"], data, z, budget, cls_name, options, grid, eps))
            assert all(r["nfe"] <= budget for r in rows if r["problem"] == problem), "a run exceeded the NFE budget"
        print_table(problem, kind, [r for r in rows if r["problem"] == problem], budgets)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"n = {args.n}, seed {args.seed}; {time.perf_counter() - start:.0f} s in all")


PEERS = ("diffusers", "k-diffusion", "azula")


def recommended(budget):
    """The solver docs/which-sampler.md recommends at this NFE, with its defaults."""
    return "ipndm()" if 6 <= budget <= 10 else "unipc()"


def print_table(problem, kind, rows, budgets):
    libraries = ["scoresde", *(f"{name}()" for name in DEFAULTS), "diffusers", "k-diffusion", "azula"]
    print(f"\n{problem} ({kind}, lower is better; floor: n exact samples, mean ± sd of 5 draws)")
    print("| NFE | floor | " + " | ".join(libraries) + " | ratio | default / peer | default / tuned |")
    print("|---:|---:|" + "---|" * len(libraries) + "---:|---:|---:|")
    for budget in budgets:
        best = {}
        for lib in libraries:
            candidates = [r for r in rows if r["budget"] == budget and r["library"] == lib]
            if candidates:
                best[lib] = min(candidates, key=lambda r: r["value"])
        peer = min((best[lib] for lib in PEERS if lib in best), key=lambda r: r["value"], default=None)
        cells = [("–" if lib not in best else f"{best[lib]['value']:.4f}" if lib.endswith("()") else
                  f"{best[lib]['value']:.4f} {best[lib]['config']} [{best[lib]['nfe']}]") for lib in libraries]
        ratio = f"{best['scoresde']['value'] / peer['value']:.3f}" if peer and "scoresde" in best else "–"
        rec = best.get(recommended(budget))  # the recommended solver's defaults against the best peer and own best
        goal = [f"{rec['value'] / ref['value']:.3f}" if rec and ref else "–" for ref in (peer, best.get("scoresde"))]
        goal[0] = f"{goal[0]} {recommended(budget)}" if rec and peer else goal[0]
        print(f"| {budget} | {rows[0]['floor']} | " + " | ".join(cells) + f" | {ratio} | {goal[0]} | {goal[1]} |")


if __name__ == "__main__":
    main()
