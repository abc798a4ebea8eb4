"""Samplers with one calling convention: `x, nfe = sampler(score_fn, sde, shape, generator=g)`.

    sampler = get_sampler("pc", steps=500, snr=0.16)   # or get_sampler("torchsde:srk", steps=100)
"""
from __future__ import annotations

import inspect

from .._utils import ArgumentTypeError, choice_error, describe
from .ancestral import AncestralSampler
from .base import OPTIMIZED, CountedScore, Sampler, tweedie
from .ddim import DDIMSampler
from .deis import DEISSampler
from .dpm_solver import DPMSolverSampler
from .dpm_solver_sde import DPMSolverSDESampler
from .edm import EDMHeunSampler
from .grids import GRIDS
from .ipndm import IPNDMSampler
from .ode import ODESampler
from .optimized import check_optimizes_grid, optimized_grid
from .pc import CORRECTORS, PREDICTORS, PCSampler
from .sde_solvers import EulerMaruyamaSampler, ReverseDiffusionSampler
from .torchsde_sampler import TorchSDESampler
from .unipc import UniPCSampler

SAMPLERS = {
    "ancestral": AncestralSampler,
    "reverse_diffusion": ReverseDiffusionSampler,
    "euler_maruyama": EulerMaruyamaSampler,
    "pc": PCSampler,
    "ode": ODESampler,
    "ddim": DDIMSampler,
    "dpm_solver": DPMSolverSampler,
    "dpm_solver_sde": DPMSolverSDESampler,
    "unipc": UniPCSampler,
    "deis": DEISSampler,
    "ipndm": IPNDMSampler,
    "edm": EDMHeunSampler,
    "torchsde": TorchSDESampler,
}


def sampler_options(cls) -> list[str]:
    """The keyword options a sampler class accepts (its own and the base loop's)."""
    names = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        names |= {p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "kwargs")}
    return sorted(names)


def get_sampler(name: str, **options) -> Sampler:
    """Build a sampler by name; "torchsde:srk" or "ode:heun" sets `method`. Unknown names and options fail."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"sampler name must be a string, one of {sorted(SAMPLERS)} (or 'ode:heun' and the "
                                f"like), got {describe(name)}")
    base, _, method = name.partition(":")
    if base not in SAMPLERS:
        raise choice_error("sampler name", name, SAMPLERS)
    cls = SAMPLERS[base]
    if method:
        if "method" not in sampler_options(cls):
            raise ValueError(f"sampler {base!r} has no method; 'name:method' works for ode and torchsde")
        options["method"] = method
    unknown = sorted(set(options) - set(sampler_options(cls)))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for sampler {base!r}; valid options: {sampler_options(cls)}")
    sampler = cls(**options)
    if sampler.grid == OPTIMIZED:
        check_optimizes_grid(sampler, f" with {options}")
    return sampler


__all__ = ["SAMPLERS", "get_sampler", "sampler_options", "Sampler", "CountedScore", "tweedie", "AncestralSampler",
           "ReverseDiffusionSampler", "EulerMaruyamaSampler", "PCSampler", "ODESampler", "DDIMSampler",
           "TorchSDESampler", "DPMSolverSampler", "DPMSolverSDESampler", "UniPCSampler", "DEISSampler", "IPNDMSampler",
           "EDMHeunSampler", "GRIDS", "optimized_grid", "PREDICTORS", "CORRECTORS"]
