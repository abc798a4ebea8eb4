"""Tolerances derived from the arithmetic, so that an exact test holds on any CPU, libm, BLAS build and thread count.

One ulp of x is eps·|x| (eps = 2⁻⁵² = 2.2e-16 in float64). The rules the tests use:
- k roundings of well-conditioned operations leave at most about k ulps of the result;
- a cancellation 1 − r, with r ≈ 1, keeps the absolute error of r: its tolerance is ulps of 1, not of the (small)
  result, i.e. it grows by 1/|1 − r| relatively;
- a running sum or product of n terms, in whatever order BLAS or the threads pick, is off by at most about
  n ulps of the sum of the terms' magnitudes;
- exp, log, sqrt and pow are within a few ulps in any libm (vectorised ones included): count each as 4.
Each tolerance counts its operations this way and multiplies by SAFETY, so that it sits far above the round-off of
every machine and still far below the error of a wrong coefficient (at least 1e-6 relative in every test).

How the suite's tight tolerances were checked: `SCORESDE_TOLERANCE_AUDIT=FILE pytest` (tests/_tolerance_audit.py)
records how much of each tolerance below 1e-10 an assertion used; every site that used more than 1 % of it here
derives its tolerance with ulps() and says how in a comment.
"""
import torch

EPS64 = torch.finfo(torch.float64).eps
SAFETY = 8


def ulps(n_ops: float, scale=1.0, dtype=torch.float64) -> float:
    """SAFETY · n_ops ulps of `scale` (a number, or the max |·| of a tensor) in `dtype`."""
    if isinstance(scale, torch.Tensor):
        scale = scale.detach().abs().max().item()
    return SAFETY * n_ops * torch.finfo(dtype).eps * abs(float(scale))
