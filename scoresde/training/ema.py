"""Exponential moving average of weights (Polyak averaging; Ho et al. 2020 use rate 0.9999), with warm-up."""
from __future__ import annotations

import copy

import torch

from .._utils import ema_update_


class EMA:
    """Keeps `self.model`, a copy whose parameters track r·ema + (1 − r)·current after every update.

    With warmup=True, the n-th update (n = 0, 1, …) uses r = min(rate, (1 + n)/(10 + n)), as common EMA
    libraries do: early updates follow the model closely, so the EMA is useful after a few hundred steps
    instead of staying near the random initialisation for ~1/(1 − rate) steps.
    """

    def __init__(self, model: torch.nn.Module, rate: float = 0.9999, warmup: bool = True):
        self.rate = rate  # the long-run decay rate
        self.warmup = warmup  # ramp the rate up as (1 + n)/(10 + n)
        self.num_updates = 0  # n, the number of updates so far (checkpointed)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_rate(self) -> float:
        """The decay rate the next update will use."""
        n = self.num_updates
        return min(self.rate, (1 + n) / (10 + n)) if self.warmup else self.rate

    def update(self, model: torch.nn.Module) -> None:
        ema_update_(self.model, model, 1.0 - self.current_rate())
        self.num_updates += 1

    def state_dict(self):
        return self.model.state_dict()

    def load_state_dict(self, state, num_updates: int = 0):
        self.model.load_state_dict(state)
        self.num_updates = int(num_updates)
