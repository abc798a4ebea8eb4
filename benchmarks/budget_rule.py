"""The data behind the budget-aware defaults (scoresde/sampling/budget.py): every low-NFE solver on every grid and
eps, at every NFE, on the exact-score problems of benchmarks/low_nfe.py.

    python benchmarks/budget_rule.py [--n 5000] [--budgets 3,4,5,6,8,10,15,20,50] [--json FILE]
    python benchmarks/budget_rule.py --tables FILE     # the rule's table from a saved run
    python benchmarks/budget_rule.py --tables FILE --rerun-defaults   # ... with today's defaults run again
    python benchmarks/budget_rule.py --lower-order-final  # the second pass: the rule's rows with and without it

For each solver and NFE it prints the configuration with the least geometric-mean ratio to the best
configuration of that solver on each problem, next to the rule's choice and its ratio. The Gaussian
problems are exact: every solver here is deterministic and affine for Gaussian data, so it runs on
x_T ∈ {0, e_1, …, e_d}, which gives its map x_T ↦ M x_T + b, and W₂ of N(b, M Mᵀ) to the truth is exact
(no sampling noise). The mixtures use sliced W₁ on n samples.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

import torch

import scoresde
from scoresde.sampling import GRIDS, get_sampler
from scoresde.sampling.budget import budget_defaults

from low_nfe import F64, PROBLEMS, SDE, BasisVPSDE, exact_w2, label, metric_fn

EPS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
SOLVERS = ([("unipc", {"order": p, "variant": v}) for p in (2, 3) for v in ("bh1", "bh2")]
           + [("dpm_solver", {"order": p}) for p in (2, 3)] + [("deis", {"order": p}) for p in (2, 3)]
           + [("ipndm", {"order": p}) for p in (2, 3, 4)] + [("ipndm", {"order": 3, "variable_step": True}), ("ddim", {})])


def evaluate(problem, n, seed=0):
    """(run(sampler) → metric) for one problem."""
    make, kind = PROBLEMS[problem]
    data = make()
    score = lambda x, t: data.score(SDE, x, t)  # noqa: E731
    if kind == "W2":
        sde, w2 = BasisVPSDE(), exact_w2(data)
        return lambda s: w2(s(score, sde, (data.dim + 1, data.dim), dtype=F64)[0])
    metric = metric_fn(data, kind, n)
    return lambda s: metric(s(score, SDE, (n, data.dim), generator=torch.Generator().manual_seed(seed), dtype=F64)[0])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--budgets", default="3,4,5,6,8,10,15,20,50")
    p.add_argument("--problems", default=",".join(PROBLEMS))
    p.add_argument("--json", default=None)
    p.add_argument("--tables", default=None)
    p.add_argument("--lower-order-final", action="store_true",
                   help="compare lower_order_final=False with True on the rule's choices, per NFE and problem")
    p.add_argument("--rerun-defaults", action="store_true",
                   help="with --tables: run the solvers' all-defaults rows again (after a change to the rule)")
    args = p.parse_args()
    if args.tables and args.rerun_defaults:
        rows = [r for r in json.loads(Path(args.tables).read_text()) if not r["rule"]]
        problems, budgets = sorted({r["problem"] for r in rows}), sorted({r["budget"] for r in rows})
        torch.set_num_threads(1)
        for problem in problems:
            run = evaluate(problem, args.n)
            for budget, name in itertools.product(budgets, dict.fromkeys(n for n, _ in SOLVERS)):
                s = get_sampler(name, steps=budget, progress=False)
                rows.append({"problem": problem, "budget": budget, "solver": name + "()", "name": name,
                             "options": {}, "grid": s.grid, "eps": s.eps, "value": run(s), "rule": True})
        return print_rule(rows)
        return lower_order_final_pass(args.problems.split(","), [int(b) for b in args.budgets.split(",")], args.n)
    if args.tables:
        return print_rule(json.loads(Path(args.tables).read_text()))
    torch.set_num_threads(1)
    print(f"torch threads: {torch.get_num_threads()}")
    rows, start = [], time.perf_counter()
    budgets = [int(b) for b in args.budgets.split(",")]
    for problem in args.problems.split(","):
        run = evaluate(problem, args.n)
        for budget, (name, options) in itertools.product(budgets, SOLVERS):
            first = (name, options) == next(so for so in SOLVERS if so[0] == name)
            for grid, eps in itertools.product(GRIDS, EPS):
                s = get_sampler(name, steps=budget, grid=grid, eps=eps, progress=False, **options)
                rows.append({"problem": problem, "budget": budget, "solver": label(name, options), "name": name,
                             "options": options, "grid": grid, "eps": eps, "value": run(s), "rule": False})
            if not first:
                continue
            s = get_sampler(name, steps=budget, progress=False)  # all defaults
            rows.append({"problem": problem, "budget": budget, "solver": name + "()", "name": name, "options": {},
                         "grid": s.grid, "eps": s.eps, "value": run(s), "rule": True})
        print(f"{problem}: {time.perf_counter() - start:.0f} s", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows))
    print_rule(rows)


def lower_order_final_pass(problems, budgets, n):
    """The rule's configuration with lower_order_final=False over True: geometric mean and per problem."""
    torch.set_num_threads(1)
    runs = {p: evaluate(p, n) for p in problems}
    print(f"torch threads: {torch.get_num_threads()}\n| solver | NFE | False / True, geometric mean | per problem |\n"
          "|---|---:|---:|---|")
    for name, steps in itertools.product(("unipc", "dpm_solver", "deis"), budgets):
        rule = {k: v for k, v in budget_defaults(name, steps).items() if k != "lower_order_final"}
        value = {lof: [runs[p](get_sampler(name, steps=steps, lower_order_final=lof, progress=False, **rule))
                       for p in problems] for lof in (True, False)}
        ratios = [b / a for a, b in zip(value[True], value[False])]
        g = math.exp(sum(map(math.log, ratios)) / len(ratios))
        print(f"| {name} | {steps} | {g:.3f} | " + ", ".join(f"{p} {r:.2f}" for p, r in zip(problems, ratios)) + " |")


def print_rule(rows):
    """Per NFE: the best (solver, grid, eps) by geometric-mean ratio to each problem's best, and the defaults."""
    problems = sorted({r["problem"] for r in rows})
    best = {(r["problem"], r["budget"]): min(q["value"] for q in rows if (q["problem"], q["budget"]) == (r["problem"], r["budget"]))
            for r in rows}
    def gmean(sel):
        return math.exp(sum(math.log(r["value"] / best[r["problem"], r["budget"]]) for r in sel) / len(sel))
    print("| NFE | best configuration (geometric-mean ratio to each problem's best) | ratio | "
          + " | ".join(f"{n}()" for n in ("unipc", "dpm_solver", "deis", "ipndm")) + " |")
    print("|---:|---|---:|" + "---:|" * 4)
    for budget in sorted({r["budget"] for r in rows}):
        here = [r for r in rows if r["budget"] == budget and not r["rule"]]
        configs = {}
        for r in here:
            configs.setdefault((r["solver"], r["grid"], r["eps"]), []).append(r)
        scored = sorted((gmean(v), k) for k, v in configs.items() if len(v) == len(problems))
        defaults = [gmean([r for r in rows if r["budget"] == budget and r["solver"] == f"{n}()"] or [None]) if any(
            r["solver"] == f"{n}()" for r in rows) else math.nan for n in ("unipc", "dpm_solver", "deis", "ipndm")]
        (g, (solver, grid, eps)) = scored[0]
        print(f"| {budget} | {solver}@{grid},eps={eps:g} | {g:.3f} | " + " | ".join(f"{d:.3f}" for d in defaults) + " |")


if __name__ == "__main__":
    main()
