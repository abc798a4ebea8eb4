"""How much of each tight tolerance the suite uses: SCORESDE_TOLERANCE_AUDIT=FILE pytest ... writes, per assertion
site, the largest |actual − expected| / (atol + rtol·|expected|) it met, for every torch.allclose,
torch.testing.assert_close, numpy.testing.assert_allclose and pytest.approx whose tolerance is below 1e-10.

A site that uses more than a few percent of its allowance on one machine can fail on another (other CPUs, BLAS
builds and thread counts round differently): its tolerance must be derived again from the arithmetic (see
tests/tolerance.py). Used by hand for the audit, never in CI.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

TIGHT = 1e-10
_usage: dict[str, float] = {}


def _site() -> str:
    f = sys._getframe(2)
    while f is not None and not os.path.basename(f.f_code.co_filename).startswith("test_"):
        f = f.f_back
    return "?" if f is None else f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}"


def _record(actual, expected, rtol, atol):
    if not (0 < rtol < TIGHT or 0 < atol < TIGHT or (rtol == 0 and atol < TIGHT)):
        return
    try:
        a = torch.as_tensor(np.asarray(actual.detach().cpu() if isinstance(actual, torch.Tensor) else actual),
                            dtype=torch.float64)
        b = torch.as_tensor(np.asarray(expected.detach().cpu() if isinstance(expected, torch.Tensor) else expected),
                            dtype=torch.float64)
        err, allow = (a - b).abs(), atol + rtol * b.abs()
        use = torch.where(allow > 0, err / allow, torch.where(err > 0, torch.inf, 0.0)).max().item()
    except (RuntimeError, TypeError, ValueError):
        return
    site = _site()
    _usage[site] = max(_usage.get(site, 0.0), use)


def install():
    allclose, assert_close, np_allclose = torch.allclose, torch.testing.assert_close, np.testing.assert_allclose

    def allclose_(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
        _record(a, b, rtol, atol)
        return allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)

    def assert_close_(actual, expected, *args, rtol=None, atol=None, **kw):
        if rtol is not None and atol is not None:
            _record(actual, expected, rtol, atol)
        return assert_close(actual, expected, *args, rtol=rtol, atol=atol, **kw)

    def np_allclose_(actual, desired, rtol=1e-7, atol=0, *args, **kw):
        _record(actual, desired, rtol, atol)
        return np_allclose(actual, desired, rtol, atol, *args, **kw)

    torch.allclose, torch.testing.assert_close, np.testing.assert_allclose = allclose_, assert_close_, np_allclose_
    ApproxScalar = type(pytest.approx(1.0))
    eq = ApproxScalar.__eq__

    def approx_eq(self, actual):
        try:
            if self.rel is None and self.abs is None:  # pytest's defaults; one given alone disables the other
                rel, absolute = 1e-6, 1e-12
            else:
                rel, absolute = self.rel or 0.0, self.abs or 0.0
            if isinstance(actual, (int, float)) and isinstance(self.expected, (int, float)):
                _record(float(actual), float(self.expected), rel, absolute)
        except TypeError:
            pass
        return eq(self, actual)

    ApproxScalar.__eq__ = approx_eq


def write(path: str):
    rows = sorted(_usage.items(), key=lambda kv: -kv[1])
    with open(path, "w") as f:
        json.dump(rows, f, indent=0)
