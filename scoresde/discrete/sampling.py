"""Ancestral sampling of a D3PM with any number of steps, skipping through Q_{s|t} = Q_{s+1} ⋯ Q_t."""
from __future__ import annotations

import torch

from .._utils import check_bool, check_positive_int, choice_error, progress, resolve_device, check_shape
from .process import D3PM, sample_categorical


class AncestralSampler:
    """x_T ~ p(x_T), then x_s ~ p_θ(x_s | x_t) on T = t_M > … > t_0 = 0 (Austin et al. 2021, §3.3; Algorithm 2 of
    Ho et al. 2020 in discrete state). Each step calls the network once: `steps` NFE."""

    needs_data = False  # it needs no training samples (a Run supplies them to samplers that declare it)
    name = "ancestral"
    per_sample_seeds = False  # it draws from one generator, so sharded sampling (seeds=) does not apply

    def __init__(self,
                 steps: int | None = None,  # M, steps of the grid t_i = ⌊i T / M⌋ (None: all T steps)
                 progress: bool = False,    # show a progress bar
                 ):
        self.steps = None if steps is None else check_positive_int(steps, "steps")
        self.progress = check_bool(progress, "progress")

    @torch.no_grad()
    def __call__(self, denoise_fn, process: D3PM, shape, generator=None, device=None):
        if not isinstance(process, D3PM):
            raise TypeError(f"the D3PM sampler needs a scoresde.discrete.D3PM process, got {type(process).__name__}")
        shape, device = check_shape(shape), resolve_device(device, generator)
        grid = process.time_grid(self.steps, device=device)
        x = process.prior_sample(shape, generator, device)
        ones = torch.ones(shape[0], dtype=torch.long, device=device)
        for t, s in progress(list(zip(grid[:-1].tolist(), grid[1:].tolist())), self.progress, desc="d3pm"):
            logits = denoise_fn(x, t * ones)
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
            x = sample_categorical(process.reverse_logprobs(logits, x, s * ones, t * ones), generator)
        return x, len(grid) - 1


SAMPLERS = {"ancestral": AncestralSampler}


def get_sampler(name: str, **options) -> AncestralSampler:
    """A D3PM sampler by name (see SAMPLERS); unknown names and options fail with the valid ones."""
    if name not in SAMPLERS:
        raise choice_error("D3PM sampler name", name, SAMPLERS)
    unknown = sorted(set(options) - {"steps", "progress"})
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for D3PM sampler {name!r}; valid options: ['progress', 'steps']")
    return SAMPLERS[name](**options)
