"""Mutation testing of scoresde's core modules: how many small injected bugs do the tests catch?

Each target module is parsed with `ast`. Every mutation site gives one mutant, which changes exactly one thing:
an arithmetic operator (+ ↔ −, * ↔ /, ** 2 → ** 1, ** → *), a comparison (< ↔ <=, > ↔ >=, == ↔ !=, is ↔ is not,
in ↔ not in), `and` ↔ `or`, a dropped unary minus or `not`, a numeric constant (0 → 1, 1 → 0, other ints + 1,
floats × 1.01), True ↔ False, a negated `if`/`while`/conditional test, an augmented assignment (+= ↔ −=,
*= ↔ /=), a dropped elementwise function (sqrt, exp, log, expm1, log1p, abs, clamp, or `.sort().values`),
or min ↔ max. Docstrings, `raise` statements (their messages), f-strings, annotations and default argument
values are left alone.

The mutant is written into a temporary copy of the package (the real tree is never touched) and the tests
mapped to that module (TESTS below, the exact ones first) run with `pytest -x` under a timeout. A mutant is
killed when a test fails or errors, survives when all pass, and times out when it runs past 3× the
baseline + 20 s (counted as killed). Inspected equivalent mutants, listed in EQUIVALENT with the reason,
are left out of the score. By default each mutant runs in a child forked from a parent that has already
imported torch, scipy and pytest (about 2 s saved per mutant); --subprocess starts a fresh interpreter.

    python benchmarks/mutation.py                                  # every target, every mutant
    python benchmarks/mutation.py --module sde --module metrics    # a few modules (name, or path)
    python benchmarks/mutation.py --sample 100 --seed 0            # a random subsample of all mutants
    python benchmarks/mutation.py --fraction 0.5 --seed 1          # half of each module's mutants, at random
    python benchmarks/mutation.py --rerun runs/mutation.json       # only the survivors of an earlier run
    python benchmarks/mutation.py --module pc --shard 2/3          # every third mutant of pc.py, from the second
    python benchmarks/mutation.py --max-mutants 20 --list          # print the first 20 mutants, run nothing
    python benchmarks/mutation.py --json runs/mutation.json        # also save every result

Run it single-threaded and niced on a shared machine: OMP_NUM_THREADS=1 nice -n 10 python benchmarks/mutation.py
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A heavy sampler test module: run its quick exact tests, not the Monte-Carlo and torchsde ones (minutes each).
_SAMPLERS_QUICK = ["tests/test_samplers.py", "-k", "not torchsde and not weak_order and not gaussian_moments "
                   "and not mixture_weights"]
# module -> pytest arguments, the fastest and sharpest tests first (pytest -x stops at the first failure).
# A -k expression applies to every file of its list.
TESTS = {
    "scoresde/sde.py": ["tests/test_exact_core.py", "tests/test_exact_affine.py", "tests/test_sde.py",
                        "tests/test_parameterization.py", "tests/test_likelihood.py"],
    "scoresde/schedules.py": ["tests/test_exact_affine.py", "tests/test_exact_core.py", "tests/test_sde.py"],
    "scoresde/parameterization.py": ["tests/test_parameterization.py", "tests/test_exact_core.py", "tests/test_losses.py"],
    "scoresde/losses.py": ["tests/test_exact_core.py", "tests/test_losses.py"],
    "scoresde/likelihood.py": ["tests/test_exact_core.py", "tests/test_likelihood.py"],
    "scoresde/metrics.py": ["tests/test_exact_metrics.py", "tests/test_metrics.py"],
    "scoresde/priorgrad.py": ["tests/test_priorgrad.py"],
    "scoresde/training/ema.py": ["tests/test_run.py", "-k", "ema_warmup or ema_without"],
    "scoresde/sampling/__init__.py": ["tests/test_exact_affine.py", *_SAMPLERS_QUICK],
    "scoresde/sampling/ancestral.py": ["tests/test_exact_affine.py", *_SAMPLERS_QUICK],
    "scoresde/sampling/base.py": ["tests/test_exact_affine.py", *_SAMPLERS_QUICK],
    "scoresde/sampling/ddim.py": ["tests/test_exact_affine.py", *_SAMPLERS_QUICK],
    "scoresde/sampling/dpm_solver.py": ["tests/test_exact_affine.py", *_SAMPLERS_QUICK],
    "scoresde/sampling/ode.py": ["tests/test_exact_affine.py", *_SAMPLERS_QUICK],
    "scoresde/sampling/ode_solvers.py": ["tests/test_exact_core.py", "tests/test_samplers.py", "tests/test_likelihood.py",
                                         "-k", "dopri5 or rk45"],
    "scoresde/sampling/pc.py": ["tests/test_exact_affine.py", *_SAMPLERS_QUICK],
    "scoresde/sampling/sde_solvers.py": ["tests/test_exact_affine.py", *_SAMPLERS_QUICK],
    "scoresde/sampling/torchsde_sampler.py": ["tests/test_exact_core.py", "tests/test_samplers.py", "-k",
                                              "torchsde or bad_sampler_arguments"],
}

# (module, function, why the mutants cannot change behaviour, [mutations as the runner prints them]); add one only
# after reading the code. Survivors are printed with their keys.
_EQUIVALENT = [
    ("scoresde/sde.py", "transition_from_marginals",
     "a defensive clamp: σ_t² − a²σ_s² ≥ 0 for s < t, and no rounded value was negative on 5000 times × 5 "
     "step sizes (1e-7 … 1e-3) × 4 SDEs × float32/float64",
     ["`(sigma_t**2 - (a * sigma_s) ** 2).clamp(min=0)` → `sigma_t ** 2 - (a * sigma_s) ** 2`"]),
    ("scoresde/sde.py", "SDE.timestep",
     "the upper clamp is inactive for valid times: t ≤ T (checked) rounds to at most step N, index N − 1",
     ["`1` → `0` #2"]),
    ("scoresde/sde.py", "VPSDE.discrete_marginal_coeffs",
     "the tolerance of the 'is a DDPM step' check: grid_marginals asks only for times within 1e-6 · N of one",
     ["`1e-6` → `1.0099999999999999e-06`"]),
    ("scoresde/schedules.py", "CosineSchedule.beta",
     "torch.where replaces every t ≥ t_clip by the clip, and the unclamped tan there is finite (θ ≤ π/2), "
     "also in its gradient",
     ["`t.clamp(max=self.t_clip)` → `t`"]),
    ("scoresde/schedules.py", "CosineSchedule.beta",
     "at t = t_clip the formula equals the clip (t_clip is defined by β(t_clip) = clip), up to rounding",
     ["`t < self.t_clip` → `t <= self.t_clip`"]),
    ("scoresde/losses.py", "LikelihoodImportanceSampler.__init__",
     "a constant factor of the trapezoid sums cancels in cdf / cdf[-1]",
     ["`0.5` → `0.505`"]),
    ("scoresde/losses.py", "LikelihoodImportanceSampler.sample",
     "u ∈ [0, 1) and cdf runs from 0 to 1, so searchsorted(right=True) already lies in [1, len − 1] and "
     "the clamp never acts; right=False differs only at u equal to a tabulated cdf value, where both bins "
     "give t",
     ["`torch.searchsorted(cdf, u, right=True).clamp(1, len(cdf) - 1)` → `torch.searchsorted(cdf, u, right=True)`",
      "`True` → `False`",
      "`1` → `0`",
      "`len(cdf) - 1` → `len(cdf) + 1`",
      "`1` → `0` #2"]),
    ("scoresde/losses.py", "DDPMLoss.__init__",
     "the sizes of the dummy tensors of the up-front parameterisation check: any size validates the name",
     ["`1` → `0`"] + [f"`1` → `0` #{n}" for n in range(2, 7)]),
    ("scoresde/sampling/base.py", "grid_marginals",
     "every SDE with DDPM's discrete ᾱ_i (VPSDE) has T = 1",
     ["`ts * sde.N / sde.T` → `ts * sde.N * sde.T`",
      "`ts * sde.N / sde.T` → `ts * sde.N * sde.T` #2"]),
    ("scoresde/sampling/base.py", "grid_marginals",
     "the lattice test's tolerance: DDPM steps are within 1e-12 of an integer multiple of T/N, other grid "
     "times in the tests are at least 1e-4 away",
     ["`1e-6` → `1.0099999999999999e-06`",
      "`(ts * sde.N / sde.T - torch.round(ts * sde.N / sde.T)).abs() < 1e-6` → "
      "`(ts * sde.N / sde.T - torch.round(ts * sde.N / sde.T)).abs() <= 1e-06`"]),
    ("scoresde/sampling/base.py", "Sampler.integrate",
     "every table is a tensor, and uncast float64 CPU tables still work: a 0-dim float64 coefficient does "
     "not promote a float32 state (PyTorch's promotion rule for 0-dim tensors) and combines with CUDA "
     "tensors; only the coefficients' rounding differs, by float32's 6e-8",
     ["`isinstance(v, torch.Tensor)` → `not isinstance(v, torch.Tensor)`"]),
    ("scoresde/sampling/base.py", "sqrt_",
     "defensive: its arguments β̃, v and σ_s² − η²β̃ are ≥ 0 in exact arithmetic, v is already clamped, "
     "and σ_s² − β̃ = a²σ_s⁴/σ_t² could round below 0 only if a σ_s vanished against σ_t, which no "
     "schedule reaches",
     ["`v.clamp(min=0)` → `v`"]),
    ("scoresde/sampling/dpm_solver.py", "logsnr_grid",
     "bisection: after 100 halvings of [eps, T] the bracket is below float64 resolution; one more changes "
     "nothing",
     ["`100` → `101`"]),
    ("scoresde/sampling/dpm_solver.py", "logsnr_grid",
     "differs only if λ(mid) equals the target exactly, and then both halves keep the target within the "
     "bracket",
     ["`lam(mid) > target` → `lam(mid) >= target`"]),
    ("scoresde/sampling/ode_solvers.py", "<module>",
     "_C[0] is never read: the stages use _C[1:]",
     ["`0` → `1`"]),
    ("scoresde/sampling/ode_solvers.py", "_initial_step",
     "scipy's thresholds on the scaled norms of y0 and f0; the mutant differs only for norms in [1e-5, "
     "1.01e-5)",
     ["`1e-5` → `1.0100000000000002e-05`",
      "`1e-5` → `1.0100000000000002e-05` #2"]),
    ("scoresde/sampling/ode_solvers.py", "_initial_step",
     "differs only if max(d1, d2) lies in [1e-15, 1.01e-15]",
     ["`max(d1, d2) <= 1e-15` → `max(d1, d2) < 1e-15`",
      "`1e-15` → `1.01e-15`"]),
    ("scoresde/sampling/ode_solvers.py", "_initial_step",
     "that branch needs d1 ≤ 1e-15, so h0 = 1e-6 and max(1e-6, h0 · 1e-3) is 1e-6 either way",
     ["`1e-3` → `0.00101`"]),
    ("scoresde/sampling/ode_solvers.py", "dopri5",
     "t1 = t0 returns y0 at once in either direction",
     ["`t1 > t0` → `t1 >= t0`"]),
    ("scoresde/sampling/ode_solvers.py", "dopri5",
     "the end-of-interval test's rounding slack (1e-12 relative): the last step is clipped to land on t1 "
     "exactly",
     ["`direction * (t1 - t) <= 1e-12 * max(1.0, abs(t1))` → `direction * (t1 - t) < 1e-12 * max(1.0, abs(t1))`",
      "`1e-12` → `1.01e-12`",
      "`1.0` → `1.01` #3"]),
    ("scoresde/sampling/ode_solvers.py", "dopri5",
     "differs only for an error norm of exactly 1.0",
     ["`norm < 1` → `norm <= 1`"]),
    ("scoresde/likelihood.py", "_drift_and_divergence",
     "retain_graph on the last backward pass too only keeps memory a little longer",
     ["`i < h.shape[1] - 1` → `i <= h.shape[1] - 1`",
      "`h.shape[1] - 1` → `h.shape[1] + 1`",
      "`1` → `0` #7"]),
]
EQUIVALENT = {(m, f, d): why for m, f, why, ds in _EQUIVALENT for d in ds}

UNARY_FUNCS = {"sqrt", "exp", "log", "expm1", "log1p", "abs", "clamp"}
BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
              ast.Mod: ast.FloorDiv}
CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
            ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
SELF_NEGATING = (ast.Eq, ast.NotEq, ast.Is, ast.IsNot, ast.In, ast.NotIn)
AUG_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
MINMAX = {"min": "max", "max": "min", "minimum": "maximum", "maximum": "minimum"}


@dataclass
class Mutant:
    module: str  # path relative to the repository root
    function: str  # enclosing qualified name, "<module>" at top level
    line: int
    start: tuple[int, int]  # (line, byte column) of the replaced span, 1-based lines
    end: tuple[int, int]
    replacement: str
    description: str  # "`old` → `new`"
    status: str = "pending"  # killed, survived, timeout, equivalent, error
    seconds: float = 0.0
    reason: str = ""  # for equivalents
    failed: str = field(default="", repr=False)  # first failing test, for killed mutants

    @property
    def key(self):
        return (self.module, self.function, self.description)


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class _Collector(ast.NodeVisitor):
    """Walks one module and records one Mutant per mutation site."""

    def __init__(self, module: str, source: bytes):
        self.module, self.source, self.mutants = module, source, []
        self.lines = source.splitlines(keepends=True)
        self.scope: list[str] = []

    # -- where not to mutate ------------------------------------------------------------------------------------
    def visit_Raise(self, node):  # error messages and their conditions' text are validated elsewhere
        return

    def visit_JoinedStr(self, node):
        return

    def visit_Import(self, node):
        return

    visit_ImportFrom = visit_Import

    def visit_Expr(self, node):  # docstrings and bare strings
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return
        self.generic_visit(node)

    def visit_Assign(self, node):
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def _visit_function(self, node):
        self.scope.append(node.name)
        for stmt in node.body:  # not the defaults: they are configuration, documented and validated elsewhere
            self.visit(stmt)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _visit_function

    def visit_ClassDef(self, node):
        self.scope.append(node.name)
        for stmt in node.body:
            self.visit(stmt)
        self.scope.pop()

    # -- mutation sites -------------------------------------------------------------------------------------------
    def _segment(self, node) -> str:
        return ast.get_source_segment(self.source.decode(), node) or ast.unparse(node)

    def _add(self, node, new_node_or_text, what=None):
        new = new_node_or_text if isinstance(new_node_or_text, str) else ast.unparse(new_node_or_text)
        old = self._segment(node)
        if new == ast.unparse(node):
            return
        self.mutants.append(Mutant(
            module=self.module, function=".".join(self.scope) or "<module>", line=node.lineno,
            start=(node.lineno, node.col_offset), end=(node.end_lineno, node.end_col_offset), replacement=f"({new})",
            description=what or f"`{_short(old)}` → `{_short(new)}`"))

    def _copy_with(self, node, **changes):
        new = type(node)(**{f: getattr(node, f) for f in node._fields})
        for k, v in changes.items():
            setattr(new, k, v)
        return new

    def visit_BinOp(self, node):
        op = type(node.op)
        if op is ast.Pow and isinstance(node.right, ast.Constant) and node.right.value == 2:
            self._add(node, self._copy_with(node, right=ast.Constant(1)))
        elif op is ast.Pow:
            self._add(node, self._copy_with(node, op=ast.Mult()))
        elif op in BINOP_SWAP:
            self._add(node, self._copy_with(node, op=BINOP_SWAP[op]()))
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, (ast.USub, ast.Not)):
            self._add(node, node.operand)
        self.generic_visit(node)

    def visit_Compare(self, node):
        for i, op in enumerate(node.ops):
            if type(op) in CMP_SWAP:
                ops = list(node.ops)
                ops[i] = CMP_SWAP[type(op)]()
                self._add(node, self._copy_with(node, ops=ops))
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        self._add(node, self._copy_with(node, op=ast.Or() if isinstance(node.op, ast.And) else ast.And()))
        self.generic_visit(node)

    def visit_Constant(self, node):
        v = node.value
        if isinstance(v, bool):
            self._add(node, repr(not v))
        elif isinstance(v, int):
            self._add(node, repr({0: 1, 1: 0}.get(v, v + 1)))
        elif isinstance(v, float):
            self._add(node, repr(1.0 if v == 0 else v * 1.01))

    def _negate_test(self, node):
        t = node.test  # `not x` and `a == b` (in, is) already have their negation among the other mutants
        if not (isinstance(t, ast.UnaryOp) and isinstance(t.op, ast.Not)
                or isinstance(t, ast.Compare) and len(t.ops) == 1 and type(t.ops[0]) in SELF_NEGATING):
            self._add(t, ast.UnaryOp(op=ast.Not(), operand=t))

    def visit_If(self, node):
        self._negate_test(node)
        self.generic_visit(node)

    visit_While = visit_IfExp = visit_If

    def visit_AugAssign(self, node):
        if type(node.op) in AUG_SWAP:
            # replace just the statement's text: target op= value
            new = ast.AugAssign(target=node.target, op=AUG_SWAP[type(node.op)](), value=node.value)
            old = self._segment(node)
            self.mutants.append(Mutant(
                module=self.module, function=".".join(self.scope) or "<module>", line=node.lineno,
                start=(node.lineno, node.col_offset), end=(node.end_lineno, node.end_col_offset),
                replacement=ast.unparse(new), description=f"`{_short(old)}` → `{_short(ast.unparse(new))}`"))
        self.generic_visit(node)

    def visit_Call(self, node):
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
        if name in UNARY_FUNCS:
            if isinstance(f, ast.Attribute) and not (isinstance(f.value, ast.Name) and f.value.id in ("torch", "math", "np")):
                self._add(node, f.value)  # x.sqrt() → x
            elif node.args:
                self._add(node, node.args[0])  # torch.sqrt(x) → x
        if name in MINMAX:
            new_func = (ast.Attribute(value=f.value, attr=MINMAX[name]) if isinstance(f, ast.Attribute)
                        else ast.Name(id=MINMAX[name]))
            self._add(node, self._copy_with(node, func=new_func))
        self.generic_visit(node)

    def visit_Attribute(self, node):
        # (expr).sort(...).values → expr
        if (node.attr == "values" and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute)
                and node.value.func.attr == "sort"):
            self._add(node, node.value.func.value)
        self.generic_visit(node)


def collect(module: str) -> list[Mutant]:
    source = (ROOT / module).read_bytes()
    collector = _Collector(module, source)
    collector.visit(ast.parse(source))
    mutants, seen = [], {}
    for m in collector.mutants:
        n = seen[m.key] = seen.get(m.key, 0) + 1
        if n > 1:  # the same change twice in one function: number the occurrences, so keys stay unique
            m.description += f" #{n}"
        try:
            compile(apply(source, m), module, "exec")
        except SyntaxError:
            continue
        m.reason = EQUIVALENT.get(m.key, "")
        mutants.append(m)
    return mutants


def apply(source: bytes, m: Mutant) -> bytes:
    """Splice the replacement over the node's byte span (ast columns count UTF-8 bytes)."""
    lines = source.splitlines(keepends=True)
    offset = lambda line, col: sum(len(l) for l in lines[: line - 1]) + col
    a, b = offset(*m.start), offset(*m.end)
    return source[:a] + m.replacement.encode() + source[b:]


# -- running tests --------------------------------------------------------------------------------------------------
def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    return env


class Runner:
    """Runs pytest on a temporary copy of scoresde/ and tests/; each mutant is written into the copy and undone."""

    def __init__(self, fork: bool = True):
        self.tmp = Path(tempfile.mkdtemp(prefix="scoresde-mutation-"))
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name in ("scoresde", "tests", "configs"):  # the training tests read configs/
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, self.tmp / name, ignore=ignore)
        shutil.copy(ROOT / "pyproject.toml", self.tmp / "pyproject.toml")
        self.fork = fork and hasattr(os, "fork")
        if self.fork:
            os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
            sys.dont_write_bytecode = True
            import numpy, pytest, scipy.integrate, scipy.linalg, torch, torchsde  # noqa: F401  (preloaded once)
            torch.set_num_threads(1)

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def pytest_args(self, module: str) -> list[str]:
        args = [a for a in TESTS[module] if not a.endswith(".py") or (ROOT / a).exists()]
        return ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--no-header", "-W", "ignore", *args]

    def run(self, module: str, timeout: float) -> tuple[str, float, str]:
        """('passed' | 'failed' | 'timeout', seconds, first failing test) for the tests of `module` on the copy."""
        start = time.perf_counter()
        log = self.tmp / "pytest.log"
        if self.fork:
            pid = os.fork()
            if pid == 0:  # child: import the (mutated) package fresh and run pytest in-process
                code = 3
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                try:
                    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                    os.dup2(fd, 1)
                    os.dup2(fd, 2)
                    os.chdir(self.tmp)
                    sys.path.insert(0, str(self.tmp))
                    import pytest
                    code = pytest.main(self.pytest_args(module))
                finally:
                    os._exit(int(code))
            status = None
            while time.perf_counter() - start < timeout:
                done, code = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = code
                    break
                time.sleep(0.02)
            if status is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "timeout", time.perf_counter() - start, ""
            rc = os.waitstatus_to_exitcode(status)
        else:
            try:
                with open(log, "w") as out:
                    rc = subprocess.run([sys.executable, "-m", "pytest", *self.pytest_args(module)], cwd=self.tmp,
                                        env=_env(), stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                return "timeout", time.perf_counter() - start, ""
        seconds = time.perf_counter() - start
        if rc == 0:
            return "passed", seconds, ""
        text = log.read_text(errors="replace")
        first = next((l.split(" ", 1)[1] for l in text.splitlines() if l.startswith(("FAILED ", "ERROR "))), f"rc={rc}")
        return "failed", seconds, first[:160]

    def with_mutant(self, m: Mutant, timeout: float):
        path = self.tmp / m.module
        original = path.read_bytes()
        path.write_bytes(apply(original, m))
        try:
            return self.run(m.module, timeout)
        finally:
            path.write_bytes(original)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--module", action="append", help="target module: a key of TESTS or its short name (sde, pc, ...)")
    parser.add_argument("--max-mutants", type=int, help="run at most this many mutants (after sampling)")
    parser.add_argument("--sample", type=int, help="draw this many mutants at random from all targets")
    parser.add_argument("--fraction", type=float, help="draw this fraction of each module's mutants at random")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample and --fraction")
    parser.add_argument("--rerun", action="append", help="a --json file of an earlier run: run only its survivors")
    parser.add_argument("--shard", help="K/N: run only every N-th mutant starting at the K-th (1-based), to split a run")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--json", help="write every mutant and its result to this file")
    parser.add_argument("--subprocess", action="store_true", help="a fresh interpreter per mutant instead of fork")
    parser.add_argument("--timeout-factor", type=float, default=3.0, help="timeout = factor × baseline + 20 s")
    args = parser.parse_args(argv)

    modules = list(TESTS)
    if args.module:
        short = {Path(m).stem if Path(m).stem != "__init__" else Path(m).parent.name: m for m in modules}
        unknown = [m for m in args.module if m not in TESTS and m not in short]
        if unknown:
            parser.error(f"unknown module(s) {unknown}; valid: {sorted(short)}")
        modules = [TESTS_KEY for m in args.module for TESTS_KEY in [m if m in TESTS else short[m]]]
    mutants = [m for module in modules for m in collect(module)]
    if args.rerun:
        survivors = {tuple(m[k] for k in ("module", "function", "description"))
                     for path in args.rerun for m in json.loads(Path(path).read_text()) if m["status"] == "survived"}
        mutants = [m for m in mutants if m.key in survivors]
    if args.fraction is not None:  # seeded per module, so a module's sample does not depend on the others asked for
        mutants = [m for module in modules for group in [[m for m in mutants if m.module == module]]
                   for m in sorted(random.Random(f"{args.seed}:{module}").sample(group, round(args.fraction * len(group))),
                                   key=lambda m: m.line)]
    if args.sample is not None:
        mutants = sorted(random.Random(args.seed).sample(mutants, min(args.sample, len(mutants))),
                         key=lambda m: (modules.index(m.module), m.line))
    if args.shard:
        k, n = (int(v) for v in args.shard.split("/"))
        if not 1 <= k <= n:
            parser.error(f"--shard must be K/N with 1 <= K <= N, got {args.shard}")
        mutants = mutants[k - 1::n]
    if args.max_mutants is not None:
        mutants = mutants[: args.max_mutants]
    if args.list:
        for m in mutants:
            print(f"{m.module}:{m.line} [{m.function}] {m.description}" + (f"  (equivalent: {m.reason})" if m.reason else ""))
        print(f"{len(mutants)} mutants")
        return 0

    runner = Runner(fork=not args.subprocess)
    t0 = time.perf_counter()
    try:
        baseline = {}
        for module in dict.fromkeys(m.module for m in mutants):
            status, seconds, first = runner.run(module, timeout=900)
            if status != "passed":
                print(f"baseline tests of {module} do not pass ({status}: {first}); fix them first", file=sys.stderr)
                return 2
            baseline[module] = seconds
            print(f"baseline {module}: {seconds:.1f} s", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout` still gets the report of what ran
        for i, m in enumerate(mutants, 1):
            if m.reason:
                m.status = "equivalent"
            else:
                status, m.seconds, m.failed = runner.with_mutant(m, args.timeout_factor * baseline[m.module] + 20)
                m.status = {"failed": "killed", "passed": "survived", "timeout": "timeout"}[status]
            print(f"[{i}/{len(mutants)}] {m.status:10s} {m.seconds:5.1f}s {m.module}:{m.line} {m.description}", flush=True)
    except (KeyboardInterrupt, SystemExit):
        print("\ninterrupted: the report covers the mutants that ran", flush=True)
    finally:
        runner.close()
    done = [m for m in mutants if m.status != "pending"]
    report(done, time.perf_counter() - t0)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps([asdict(m) for m in done], indent=1, ensure_ascii=False))
    return 0 if len(done) == len(mutants) else 1


def report(mutants: list[Mutant], seconds: float):
    print(f"\n{'module':40s} {'killed':>7s} {'timeout':>8s} {'survived':>9s} {'equiv.':>7s} {'score':>7s}")
    rows = {}
    for m in mutants:
        rows.setdefault(m.module, []).append(m)
    rows["total"] = mutants
    for module, ms in rows.items():
        n = {s: sum(m.status == s for m in ms) for s in ("killed", "timeout", "survived", "equivalent")}
        scored = n["killed"] + n["timeout"] + n["survived"]
        score = f"{100 * (n['killed'] + n['timeout']) / scored:.1f}%" if scored else "–"
        print(f"{module:40s} {n['killed']:7d} {n['timeout']:8d} {n['survived']:9d} {n['equivalent']:7d} {score:>7s}")
    survivors = [m for m in mutants if m.status == "survived"]
    if survivors:
        print("\nsurvivors (add a test, or an EQUIVALENT entry with the reason):")
        for m in survivors:
            print(f"  {m.module}:{m.line}  {m.key!r}")
    print(f"\n{len(mutants)} mutants in {seconds / 60:.1f} min")


if __name__ == "__main__":
    sys.exit(main())
