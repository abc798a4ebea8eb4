"""GITS' optimized grid (scoresde.sampling.optimized): the dynamic programme, the solvers' local steps, caching, errors."""
import itertools

import pytest
import torch

import scoresde
from scoresde.sampling import get_sampler, optimized_grid
from scoresde.sampling.optimized import calibration, cached_grid, dynamic_programme
from problems import DEVICES, gaussian

F64 = torch.float64
SDE = scoresde.VPSDE()
DATA = gaussian(dim=3)
SCORE = DATA.score_fn(SDE)
QUIET = dict(log=lambda line: None)


def test_dynamic_programme_is_the_brute_force_optimum():
    """With a path-free cost, the forward programme finds the cheapest of all C(fine − 1, K − 1) grids."""
    cost = torch.rand(9, 9, generator=torch.Generator().manual_seed(0), dtype=F64).tolist()
    fine, K = 8, 4
    path = dynamic_programme(lambda p, j, k: cost[p[-1]][j], fine, K)
    total = lambda p: sum(cost[a][b] for a, b in zip(p, p[1:]))  # noqa: E731
    brute = min(([0, *mid, fine] for mid in itertools.combinations(range(1, fine), K - 1)), key=total)
    assert path == brute and len(path) == K + 1


def test_dynamic_programme_passes_the_path_taken():
    """A multistep solver's cost sees the path that reached its state: here a cost that forbids steps whose
    predecessor step was longer than 2 fine points."""
    seen = []

    def cost(path, j, k):
        seen.append((tuple(path), j, k))
        return 100.0 if len(path) > 1 and path[-1] - path[-2] > 2 else float(j - path[-1]) ** 2

    path = dynamic_programme(cost, 6, 3)
    assert path == [0, 2, 4, 6]
    assert all(p[0] == 0 and len(p) == k + 1 for p, j, k in seen)


@pytest.mark.parametrize("name, options", [("ddim", {}), ("dpm_solver", {"order": 3}), ("deis", {"order": 3}),
                                           ("unipc", {"order": 3, "corrector": False}), ("ipndm", {"order": 4}),
                                           ("ipndm", {"order": 3, "variable_step": True})])
def test_local_step_is_the_solvers_own_step(name, options):
    """From the states and outputs of the solver's own run, local_step gives its next state (float64, to rounding)."""
    ts = torch.tensor([1.0, 0.7, 0.45, 0.3, 0.15, 0.05, 0.01], dtype=F64)
    sampler = get_sampler(name, ts=ts, denoise=False, progress=False, return_trajectory=True, **options)
    _, _, traj = sampler(SCORE, SDE, (8, 3), generator=torch.Generator().manual_seed(0), dtype=F64)
    alpha, sigma = SDE.marginal_coeffs(ts)
    x0 = torch.stack([(traj[i] + sigma[i] ** 2 * SCORE(traj[i], ts[i].expand(8))) / alpha[i] for i in range(len(ts))])
    orders = sampler.step_orders_for(len(ts) - 1)
    for k, p in enumerate(orders):
        idx = list(range(k + 1 - p, k + 2))
        x = sampler.local_step(SDE, ts[idx], traj[idx[:-1]], x0[idx[:-1]], p)
        torch.testing.assert_close(x, traj[k + 1], rtol=0, atol=1e-12)


def test_calibration_is_the_teachers_trajectory():
    """The fine states are DPM-Solver++(3M)'s on the refined grid, from the sampler's own prior draw for the seed."""
    ts, xs, x0s, nfe = calibration(SCORE, SDE, (3,), 1e-3, fine=8, refine=2, samples=5, seed=3, dtype=F64)
    teacher = get_sampler("dpm_solver", order=3, lower_order_final=False, steps=17, grid="logsnr", eps=1e-3,
                          denoise=False, progress=False, return_trajectory=True)
    _, _, traj = teacher(SCORE, SDE, (5, 3), generator=torch.Generator().manual_seed(3), dtype=F64)
    torch.testing.assert_close(xs, traj[::2], rtol=0, atol=0)
    assert len(ts) == 9 and nfe == 5 * (16 + 8)
    alpha, sigma = SDE.marginal_coeffs(ts)
    torch.testing.assert_close(x0s[2], (xs[2] + sigma[2] ** 2 * SCORE(xs[2], ts[2].expand(5))) / alpha[2])


@pytest.mark.parametrize("device", DEVICES)
def test_optimized_grid_is_a_reproducible_grid(device):
    """steps times from T to eps, strictly decreasing, on the fine grid; the same from the same seed; on any device."""
    sampler = get_sampler("dpm_solver", steps=5, eps=1e-2, progress=False)
    ts = optimized_grid(sampler, SCORE, SDE, (3,), eps=1e-2, fine=16, samples=8, device=device, dtype=F64, **QUIET)
    fine = calibration(SCORE, SDE, (3,), 1e-2, fine=16, refine=4, samples=1, dtype=F64)[0]
    assert len(ts) == 5 and ts[0] == SDE.T and ts[-1] == 1e-2 and bool((ts.diff() < 0).all())
    assert all(bool((fine == t).any()) for t in ts)
    again = optimized_grid(sampler, SCORE, SDE, (3,), eps=1e-2, fine=16, samples=8, device=device, dtype=F64, **QUIET)
    assert torch.equal(ts, again)


def test_ddim_grid_minimises_its_accumulated_local_error():
    """For DDIM the cost is path-free: the grid found is the cheapest of every grid on the fine points."""
    sampler = get_sampler("ddim", steps=4, progress=False)
    ts = optimized_grid(sampler, SCORE, SDE, (3,), fine=7, samples=16, dtype=F64, **QUIET)
    fine, xs, x0s, _ = calibration(SCORE, SDE, (3,), SDE.sampling_eps, fine=7, refine=4, samples=16, dtype=F64)
    err = lambda i, j: (sampler.local_step(SDE, fine[[i, j]], xs[[i]], x0s[[i]], 1) - xs[j]).norm(dim=1).mean().item()  # noqa: E731
    total = lambda p: sum(err(a, b) for a, b in zip(p, p[1:]))  # noqa: E731
    brute = min(([0, *mid, 7] for mid in itertools.combinations(range(1, 7), 2)), key=total)
    assert torch.equal(ts, fine[brute])


def test_grid_optimized_in_the_sampler_and_in_a_cache(tmp_path, monkeypatch):
    """grid='optimized' computes the grid once per score (then from memory), and a cache folder keeps it on disk."""
    import scoresde.sampling.optimized as opt
    calls = []
    real = opt.optimized_grid
    monkeypatch.setattr(opt, "optimized_grid", lambda *a, **k: calls.append(1) or real(*a, **{**k, "fine": 12, "samples": 4}))
    sampler = get_sampler("ipndm", steps=4, grid="optimized", progress=False)
    sampler.grid_cache = (tmp_path, {"run": "test"})
    x, nfe = sampler(SCORE, SDE, (6, 3), generator=torch.Generator().manual_seed(0), dtype=F64)
    sampler(SCORE, SDE, (6, 3), generator=torch.Generator().manual_seed(1), dtype=F64)
    assert nfe == 4 and len(calls) == 1 and len(list(tmp_path.glob("grid_*.json"))) == 1
    fresh = get_sampler("ipndm", steps=4, grid="optimized", progress=False)
    fresh.grid_cache = (tmp_path, {"run": "test"})
    y, _ = fresh(SCORE, SDE, (6, 3), generator=torch.Generator().manual_seed(0), dtype=F64)
    assert len(calls) == 1 and torch.equal(x, y)  # read back from the folder
    other = get_sampler("ipndm", steps=5, grid="optimized", progress=False)
    other.grid_cache = (tmp_path, {"run": "test"})
    other(SCORE, SDE, (6, 3), generator=torch.Generator().manual_seed(0), dtype=F64)
    assert len(calls) == 2 and len(list(tmp_path.glob("grid_*.json"))) == 2


def test_cached_grid_recomputes_a_foreign_file(tmp_path):
    key = {"a": 1}
    ts = cached_grid(tmp_path, key, lambda: torch.tensor([1.0, 0.5, 0.01], dtype=F64))
    path = next(tmp_path.glob("grid_*.json"))
    path.write_text('{"key": {"a": 2}, "ts": [1.0, 0.2, 0.01]}')
    again = cached_grid(tmp_path, key, lambda: torch.tensor([1.0, 0.4, 0.01], dtype=F64))
    assert ts.tolist() == [1.0, 0.5, 0.01] and again.tolist() == [1.0, 0.4, 0.01]


def test_optimized_grid_bad_input():
    with pytest.raises(ValueError, match=r"grid='optimized' needs a sampler that takes one step .* got 'edm'"):
        get_sampler("edm", grid="optimized")
    with pytest.raises(ValueError, match=r"grid='optimized' needs a sampler .* got 'ddim'"):
        get_sampler("ddim", eta=0.5, grid="optimized")
    with pytest.raises(ValueError, match="grid='optimized' depends on the model"):
        get_sampler("unipc", grid="optimized").time_grid(SDE)
    with pytest.raises(ValueError, match=r"needs 2 <= steps <= fine \+ 1 = 9"):
        optimized_grid(get_sampler("unipc", steps=12), SCORE, SDE, (3,), fine=8, **QUIET)
    with pytest.raises(ValueError, match="samples must be"):
        optimized_grid(get_sampler("unipc", steps=4), SCORE, SDE, (3,), samples=0, **QUIET)
    discrete = scoresde.Score(lambda x, t: -x, continuous=False)
    with pytest.raises(ValueError, match="needs a continuous-time model"):
        get_sampler("unipc", steps=4, grid="optimized")(discrete, SDE, (2, 3))
