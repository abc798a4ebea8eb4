"""ODE integrators on torch tensors: adaptive Dormand–Prince 5(4) that stays on the device, and scipy's RK45.

Both integrate dy/dt = func(t, y) from t0 to t1 (either direction) and return y(t1). The torch solver
follows scipy's RK45: the same tableau, error norm and step-size control, so their NFE are comparable.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .._utils import check_positive_int, check_real, describe_nonfinite

# Dormand & Prince (1980) tableau, as in scipy.integrate.RK45.
_C = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1]
_A = [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
      [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
      [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656]]
_B = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]
_E = [-71 / 57600, 0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40]  # 5th − 4th order


def _rms(v: torch.Tensor) -> float:
    return v.pow(2).mean().sqrt().item()


def check_tolerances(rtol, atol, max_nfe) -> None:
    """rtol, atol > 0 (rtol = atol = 0 would ask for exact steps and never finish) and max_nfe >= 1."""
    check_real(rtol, "rtol", low=0, inclusive=(False, True))
    check_real(atol, "atol", low=0, inclusive=(False, True))
    check_positive_int(max_nfe, "max_nfe")


def _budget_error(solver, max_nfe, t, t0, t1, rtol, atol) -> ValueError:
    return ValueError(f"{solver} stopped at max_nfe={max_nfe} evaluations, having reached only t={t:.6g} on its way "
                      f"from {t0:.6g} to {t1:.6g} (rtol={rtol:g}, atol={atol:g}); the ODE is too stiff for these "
                      "tolerances: loosen rtol/atol, raise max_nfe, or check score_fn near that time")


def _nonfinite_error(solver, t, nfe) -> ValueError:
    return ValueError(f"{solver}: the ODE's right-hand side (the drift from score_fn) returned non-finite values "
                      f"at t={t:.6g} from a finite state, after {nfe} evaluations; check that score_fn is finite "
                      "on the whole time range")


def _check_initial(solver, y0: torch.Tensor) -> None:
    if not bool(torch.isfinite(y0).all()):
        raise ValueError(f"{solver}: the initial state y0 must be finite, got {describe_nonfinite(y0)}")


def _combine(y: torch.Tensor, h: float, coeffs, ks) -> torch.Tensor:
    """y + h Σ c_i k_i, accumulated in place into one new tensor (no temporary per term)."""
    out = y.clone()
    for c, k in zip(coeffs, ks):
        if c:
            out.add_(k, alpha=h * c)
    return out


def _initial_step(func, t0, y0, f0, direction, rtol, atol):
    """Hairer, Nørsett & Wanner (1993), Sec. II.4, as scipy's select_initial_step (one extra evaluation)."""
    scale = atol + y0.abs() * rtol
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = func(t0 + direction * h0, y0 + direction * h0 * f0)
    d2 = _rms((f1 - f0) / scale) / h0
    if not math.isfinite(d2):  # y0 + h0 f0 is finite (f0 was checked), so the drift itself failed
        raise _nonfinite_error("dopri5", t0 + direction * h0, 2)
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / 5)
    return min(100 * h0, h1)


def _failed_stage(y: torch.Tensor, step: float, ks) -> int | None:
    """After a non-finite error estimate: the first stage that returned non-finite values from a finite input.

    Such a stage means the drift itself failed at a finite state, and shrinking the step cannot help.
    None means an input overflowed instead (a far too long trial step), which a shorter step cures.
    """
    for i, k in enumerate(ks):
        y_i = y if i == 0 else _combine(y, step, (_A + [_B])[i], ks[:i])
        if bool(torch.isfinite(y_i).all()) and not bool(torch.isfinite(k).all()):
            return i
    return None


def dopri5(func, y0: torch.Tensor, t0: float, t1: float, rtol: float = 1e-5, atol: float = 1e-5,
           max_nfe: int = 10_000) -> torch.Tensor:
    """Adaptive RK45 (Dormand–Prince) in torch; only the scalar error norm goes to the host each step.

    Fails with a ValueError, naming the time reached, as soon as the drift is non-finite at a finite
    state, when the step size underflows, or after max_nfe evaluations of func.
    """
    check_tolerances(rtol, atol, max_nfe)
    nfe = 0

    def rhs(t, y):
        nonlocal nfe
        nfe += 1
        return func(t, y)

    direction = 1.0 if t1 > t0 else -1.0
    _check_initial("dopri5", y0)
    t, y, f = t0, y0, rhs(t0, y0)
    if not bool(torch.isfinite(f).all()):
        raise _nonfinite_error("dopri5", t0, nfe)
    h = _initial_step(rhs, t0, y0, f, direction, rtol, atol)
    while direction * (t1 - t) > 1e-12 * max(1.0, abs(t1)):
        if nfe + 6 > max_nfe:  # a step costs 6 evaluations
            raise _budget_error("dopri5", max_nfe, t, t0, t1, rtol, atol)
        if h < 10 * np.spacing(abs(t)):
            raise ValueError(f"dopri5: the step size underflowed to {h:.3g} at t={t:.6g} after {nfe} evaluations "
                             f"(rtol={rtol:g}, atol={atol:g}); the drift is too stiff or non-finite near that time")
        h = min(h, abs(t1 - t))
        ks, step = [f], direction * h
        for c, a in zip(_C[1:], _A[1:]):
            ks.append(rhs(t + c * step, _combine(y, step, a, ks)))
        y_new = _combine(y, step, _B, ks)
        f_new = rhs(t + step, y_new)
        err = _combine(torch.zeros_like(y), step, _E, ks + [f_new])
        err = err.div_(torch.maximum(y.abs(), y_new.abs()).mul_(rtol).add_(atol))
        # One host synchronisation per step: the error norm, NaN if y_new is not finite.
        norm = (err.pow(2).mean() + torch.where(torch.isfinite(y_new).all(), 0.0, math.nan)).sqrt().item()
        if not math.isfinite(norm):
            stage = _failed_stage(y, step, ks + [f_new])
            if stage is not None:
                raise _nonfinite_error("dopri5", t + (_C + [1])[stage] * step, nfe)
            norm = math.inf  # an overflowing trial step: reject it and shrink
        if norm < 1:
            t, y, f = t + direction * h, y_new, f_new  # accepted: first-same-as-last reuses f_new
            h *= 10.0 if norm == 0 else min(10.0, 0.9 * norm ** (-1 / 5))
        else:
            h *= max(0.2, 0.9 * norm ** (-1 / 5))
    return y


def scipy_rk45(func, y0: torch.Tensor, t0: float, t1: float, rtol: float = 1e-5, atol: float = 1e-5,
               max_nfe: int = 10_000) -> torch.Tensor:
    """scipy.integrate.solve_ivp(method='RK45'); copies the state to host memory at every evaluation."""
    from scipy import integrate

    check_tolerances(rtol, atol, max_nfe)
    shape, device, dtype = y0.shape, y0.device, y0.dtype
    _check_initial("rk45", y0)
    nfe = 0

    def rhs(t, y):
        nonlocal nfe
        if nfe >= max_nfe:
            raise _budget_error("rk45", max_nfe, t, t0, t1, rtol, atol)
        nfe += 1
        out = func(t, torch.from_numpy(y).reshape(shape).to(device, dtype)).detach().cpu().numpy()
        if np.isfinite(y).all() and not np.isfinite(out).all():  # the state is on the host already: no extra cost
            raise _nonfinite_error("rk45", t, nfe)
        return out.astype(np.float64).ravel()

    sol = integrate.solve_ivp(rhs, (t0, t1), y0.detach().cpu().numpy().astype(np.float64).ravel(),
                              method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise ValueError(f"rk45 (scipy) stopped at t={sol.t[-1]:.6g} after {nfe} evaluations "
                         f"(rtol={rtol:g}, atol={atol:g}): {sol.message}")
    return torch.from_numpy(sol.y[:, -1]).reshape(shape).to(device, dtype)


SOLVERS = {"dopri5": dopri5, "rk45": scipy_rk45}
