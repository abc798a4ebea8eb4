"""Reverse-time SDE solvers: the reverse-diffusion predictor and Euler–Maruyama (Song et al. 2021)."""
from __future__ import annotations

from .._utils import noise_like
from .base import Sampler


class ReverseDiffusionSampler(Sampler):
    """Reverse diffusion (Song et al. 2021, Eq. 46): x_s = x_t − f + G² s_θ + G z, with f, G the exact
    forward step over [s, t] (`SDE.discretize` with dt = t − s)."""

    name = "reverse_diffusion"
    one_step_when = ""  # one step at a time from x alone: projection-based conditioning applies
    kind = "SDE"  # family, for `scoresde compare`

    def prepare(self, sde, ts):
        a, v = sde.transition_coeffs(ts[:-1], ts[1:])
        return {"A": 2 - a, "G2": v, "G": v.sqrt()}  # x − f = (2 − a) x

    def step(self, score, sde, x, k, c, generator):
        return c["A"][k] * x + c["G2"][k] * score(x, c["t"][k]) + c["G"][k] * noise_like(x, generator)


class EulerMaruyamaSampler(Sampler):
    """Euler–Maruyama on dx = [f(t) x − g(t)² s_θ] dt + g(t) dw̄ with dt = −h (Song et al. 2021, Eq. 6)."""

    name = "euler_maruyama"
    one_step_when = ""  # one step at a time from x alone: projection-based conditioning applies
    kind = "SDE"  # family, for `scoresde compare`

    def prepare(self, sde, ts):
        f, g = sde.coefficients(ts[:-1])
        h = ts[:-1] - ts[1:]
        return {"A": 1 - f * h, "B": g**2 * h, "G": g * h.sqrt()}

    def step(self, score, sde, x, k, c, generator):
        return c["A"][k] * x + c["B"][k] * score(x, c["t"][k]) + c["G"][k] * noise_like(x, generator)
