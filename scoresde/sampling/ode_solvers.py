"""ODE integrators on torch tensors: adaptive Dormand–Prince 5(4) that stays on the device, and scipy's RK45.

Both integrate dy/dt = func(t, y) from t0 to t1 (either direction) and return y(t1). The torch solver
follows scipy's RK45: the same tableau, error norm and step-size control, so their NFE are comparable.
"""
from __future__ import annotations

import numpy as np
import torch

# Dormand & Prince (1980) tableau, as in scipy.integrate.RK45.
_C = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1]
_A = [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
      [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
      [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656]]
_B = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]
_E = [-71 / 57600, 0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40]  # 5th − 4th order


def _rms(v: torch.Tensor) -> float:
    return v.pow(2).mean().sqrt().item()


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
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / 5)
    return min(100 * h0, h1)


def dopri5(func, y0: torch.Tensor, t0: float, t1: float, rtol: float = 1e-5, atol: float = 1e-5,
           max_steps: int = 100_000) -> torch.Tensor:
    """Adaptive RK45 (Dormand–Prince) in torch; only the scalar error norm goes to the host each step."""
    direction = 1.0 if t1 > t0 else -1.0
    t, y, f = t0, y0, func(t0, y0)
    h = _initial_step(func, t0, y0, f, direction, rtol, atol)
    rejected = False  # as scipy: a step that follows a rejection may not grow
    for _ in range(max_steps):
        if direction * (t1 - t) <= 1e-12 * max(1.0, abs(t1)):
            return y
        h = min(h, abs(t1 - t))
        ks, step = [f], direction * h
        for c, a in zip(_C[1:], _A[1:]):
            ks.append(func(t + c * step, _combine(y, step, a, ks)))
        y_new = _combine(y, step, _B, ks)
        f_new = func(t + step, y_new)
        err = _combine(torch.zeros_like(y), step, _E, ks + [f_new])
        norm = _rms(err.div_(torch.maximum(y.abs(), y_new.abs()).mul_(rtol).add_(atol)))
        if norm < 1:
            t, y, f = t + direction * h, y_new, f_new  # accepted: first-same-as-last reuses f_new
            factor = 10.0 if norm == 0 else min(10.0, 0.9 * norm ** (-1 / 5))
            h *= min(1.0, factor) if rejected else factor
            rejected = False
        else:
            h *= max(0.2, 0.9 * norm ** (-1 / 5))
            rejected = True
    raise RuntimeError(f"dopri5 did not reach t1={t1} within {max_steps} steps (stopped at t={t})")


def scipy_rk45(func, y0: torch.Tensor, t0: float, t1: float, rtol: float = 1e-5, atol: float = 1e-5) -> torch.Tensor:
    """scipy.integrate.solve_ivp(method='RK45'); copies the state to host memory at every evaluation."""
    from scipy import integrate

    shape, device, dtype = y0.shape, y0.device, y0.dtype

    def rhs(t, y):
        out = func(t, torch.from_numpy(y).reshape(shape).to(device, dtype))
        return out.detach().cpu().numpy().astype(np.float64).ravel()

    sol = integrate.solve_ivp(rhs, (t0, t1), y0.detach().cpu().numpy().astype(np.float64).ravel(),
                              method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"scipy RK45 failed: {sol.message}")
    return torch.from_numpy(sol.y[:, -1]).reshape(shape).to(device, dtype)


SOLVERS = {"dopri5": dopri5, "rk45": scipy_rk45}
