"""Inverse problems with an unconditional score model, solved at sampling time (no retraining).

The observation is y = A x + σ_y ε with A an operator (operators.py: inpaint, downsample, blur, colorize, dense,
each with its SVD) or, for DPS, any differentiable forward model. One call runs every method:

    x, nfe = inverse.solve(score_fn, sde, y, operator, method="ddrm", sigma_y=0.05, sampler=..., generator=g)

Projection methods (projection.py) put the observation on A's row space between the moves of any one-step
sampler: replacement (Song et al. 2021, App. I), RePaint (Lugmayr et al. 2022) and ILVR (Choi et al. 2021).
Posterior methods wrap the DDPM/DDIM move: DPS, ΠGDM, DDRM, DDNM, and an SMC sampler that is exact as its number
of particles grows. exact.py has the closed-form posteriors of Gaussian and Gaussian-mixture priors they are
checked against.
"""
from __future__ import annotations

import warnings

from .._utils import check_batch, check_choice, check_real
from .base import KERNELS, Solution, Solver, data_shape
from .ddnm import DDNM
from .ddrm import DDRM
from .dps import DPS
from .exact import Posterior, posterior
from .operators import (MASKS, OPERATORS, Blur, Colorize, Dense, Downsample, Inpaint, LinearOperator,
                        build_operator, check_operator, gaussian_kernel, image_mask)
from .pigdm import PiGDM
from .projection import (COLOR_DECOUPLING, Basis, Conditioned, LowPass, Mask, check_basis, check_observation,
                         check_one_step, check_t_range, colorize, ilvr, inpaint, repaint_schedule)
from .smc import SMC


class Projection:
    """A projection method over an operator: after every move, x ← x − A⁺A x + A⁺A y_t with y_t the lifted
    observation A⁺y noised to t (σ_y is not read: y is taken as exact)."""

    method = "replacement"
    exact_y = True
    defaults: dict = {}
    options: tuple = ()  # what solve() may pass on

    def __init__(self, sampler, operator, y, sigma_y: float = 0.0, shape=None, **options):
        check_batch(y, "y", finite=True)
        shape = data_shape(operator, y, shape)
        op = check_operator(operator, shape, linear=True, method=self.method)
        if tuple(y.shape[1:]) != op.out_shape:
            raise ValueError(f"y must be observations of shape [B, {', '.join(map(str, op.out_shape))}] for "
                             f"operator {op.name!r} on data of shape {shape}, got {tuple(y.shape)}")
        self.conditioned = Conditioned(sampler, op.project, op.pinv(y), **{**self.defaults, **options})

    def __call__(self, score_fn, sde, generator=None, seeds=None):
        return Solution(*self.conditioned(score_fn, sde, generator, seeds)[:2])


class Replacement(Projection):
    """Replacement (Song et al. 2021, App. I): the observed part exact, also in the output."""


class RePaint(Projection):
    """RePaint's resampling (Lugmayr et al. 2022): resample = 5 passes over each jump of 1 grid time unless set."""

    method = "repaint"
    defaults = {"resample": 5, "jump": 1}
    options = ("resample", "jump")


class ILVR(Projection):
    """ILVR (Choi et al. 2021): the projection without putting y exactly on the output; t_range as in ilvr()."""

    method = "ilvr"
    defaults = {"exact": False}
    options = ("t_range",)


METHODS = {"replacement": Replacement, "repaint": RePaint, "ilvr": ILVR, "dps": DPS, "pigdm": PiGDM,
           "ddrm": DDRM, "ddnm": DDNM, "smc": SMC}


def solve(score_fn, sde, y, operator, method: str = "ddrm", sigma_y: float = 0.0, sampler="ancestral",
          generator=None, seeds=None, shape=None, **options) -> Solution:
    """Samples x given y = A x + σ_y ε with `method` (METHODS): returns (x, nfe), as a Solution whose .info has
    what the method reports. sampler: a built sampler or a name (a name runs its default 1000 steps); shape: one
    sample's shape of x when the operator does not imply it; options: the method's own (zeta for dps, eta and
    eta_b for ddrm, particles for smc, resample and jump for repaint, t_range for ilvr)."""
    cls = METHODS[check_choice(method, "method", METHODS)]
    if check_real(sigma_y, "sigma_y", low=0) > 0 and cls.exact_y:
        warnings.warn(f"method {method!r} does not read sigma_y: it puts y itself on A's row space, as if "
                      f"noise-free (sigma_y={sigma_y} is ignored)", stacklevel=2)
    unknown = sorted(set(options) - set(cls.options))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for method {method!r}; its options: {list(cls.options)}")
    return cls(sampler, operator, y, sigma_y, shape, **options)(score_fn, sde, generator, seeds)
