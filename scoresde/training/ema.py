"""Exponential moving average of weights (Polyak averaging; Ho et al. 2020 use rate 0.9999)."""
from __future__ import annotations

import copy

import torch


class EMA:
    """Keeps `self.model`, a copy whose parameters track rate·ema + (1 − rate)·current."""

    def __init__(self, model: torch.nn.Module, rate: float = 0.9999):
        self.rate = rate
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - self.rate)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)

    def state_dict(self):
        return self.model.state_dict()

    def load_state_dict(self, state):
        self.model.load_state_dict(state)
