"""Transition matrices Q_t of D3PM (Austin et al. 2021, §3.1 and Appendix A.2) and their noise schedules (§3.2).

A transition family turns per-step rates β_t into row-stochastic matrices [Q_t]_ij = q(x_t = j | x_{t−1} = i)
on `num_states` states, of which the first `num_data_states` are data; `stationary` is the distribution
that Q̄_T approaches, used as the prior p(x_T).
"""
from __future__ import annotations

import math

import torch

from .._utils import check_choice, check_positive_int, check_real


class Transition:
    """Base class: Q(β) for a batch of rates β [T] → [T, K, K], in float64."""

    def __init__(self, num_data_states: int):
        self.num_data_states = check_positive_int(num_data_states, "num_data_states", minimum=2)
        self.num_states = self.num_data_states

    def matrices(self, betas: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def stationary(self) -> torch.Tensor:
        """The uniform distribution: every doubly stochastic Q_t leaves it invariant."""
        return torch.full((self.num_states,), 1.0 / self.num_states, dtype=torch.float64)


class UniformTransition(Transition):
    """Q_t = (1 − β_t) I + β_t 11ᵀ/K (Austin et al. 2021, Appendix A.2; Hoogeboom et al. 2021)."""

    def matrices(self, betas):
        K, b = self.num_states, betas[:, None, None]
        return (1 - b) * torch.eye(K, dtype=torch.float64) + b / K


class AbsorbingTransition(Transition):
    """Q_t = (1 − β_t) I + β_t 1 e_mᵀ with an extra [MASK] state m = K (Austin et al. 2021, §3.1)."""

    def __init__(self, num_data_states: int):
        super().__init__(num_data_states)
        self.num_states = self.num_data_states + 1
        self.mask = self.num_data_states

    def matrices(self, betas):
        b = betas[:, None, None]
        to_mask = torch.zeros(self.num_states, self.num_states, dtype=torch.float64)
        to_mask[:, self.mask] = 1
        return (1 - b) * torch.eye(self.num_states, dtype=torch.float64) + b * to_mask

    @property
    def stationary(self):
        return torch.nn.functional.one_hot(torch.tensor(self.mask), self.num_states).double()


class GaussianTransition(Transition):
    """Discretised Gaussian for ordinal data (Austin et al. 2021, §3.1 and
    Appendix A.2): for i ≠ j
    [Q_t]_ij = exp(−4(i − j)²/((K − 1)² β_t)) / Σ_{n=−(K−1)}^{K−1} exp(−4n²/((K − 1)² β_t)), and the diagonal
    makes rows sum to 1. Q_t is symmetric, hence doubly stochastic, so the stationary distribution is uniform."""

    def matrices(self, betas):
        K = self.num_states
        n = torch.arange(-(K - 1), K, dtype=torch.float64)
        weights = torch.softmax(-4 * n**2 / ((K - 1) ** 2 * betas[:, None]), dim=1)  # [T, 2K − 1]
        gap = (torch.arange(K)[:, None] - torch.arange(K)[None, :]).abs()
        Q = weights[:, K - 1 + gap] * (gap > 0)
        return Q + torch.diag_embed(1 - Q.sum(-1))


TRANSITIONS = {"uniform": UniformTransition, "absorbing": AbsorbingTransition, "gaussian": GaussianTransition}


def linear_betas(T: int, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    """β_t linear from `start` to `end` (Ho et al. 2020); D3PM's choice for the discretised Gaussian (§3.2)."""
    check_real(start, "beta_start", 0, 1, inclusive=(False, True))
    check_real(end, "beta_end", 0, 1, inclusive=(False, True))
    return torch.linspace(start, end, check_positive_int(T, "T"), dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008) -> torch.Tensor:
    """β_t = 1 − ᾱ_t/ᾱ_{t−1} with ᾱ_t ∝ cos((t/T + s)/(1 + s) · π/2), capped at 0.999: the cosine schedule that D3PM
    uses for uniform transitions (Austin et al. 2021, §3.2, after Hoogeboom et al. 2021; ᾱ_t uses cos, not cos²)."""
    t = torch.arange(check_positive_int(T, "T") + 1, dtype=torch.float64) / T
    alpha_bar = torch.cos((t + s) / (1 + s) * math.pi / 2)
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)


def mutual_information_betas(T: int) -> torch.Tensor:
    """β_t = 1/(T − t + 1): the schedule under which I(x_t; x_0) falls linearly to 0, in closed form for the
    absorbing transition (Austin et al. 2021, §3.2; Sohl-Dickstein et al. 2015). Then ᾱ_t = 1 − t/T."""
    T = check_positive_int(T, "T")
    return 1.0 / (T - torch.arange(1, T + 1, dtype=torch.float64) + 1)


SCHEDULES = ("linear", "cosine", "mutual_information")


def make_betas(schedule: str, T: int, transition: str, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_1..β_T of a schedule by name; the mutual-information schedule is closed-form only for absorbing."""
    check_choice(schedule, "schedule", SCHEDULES)
    if schedule == "mutual_information" and transition != "absorbing":
        raise ValueError(f"schedule='mutual_information' is implemented for transition='absorbing' (where it is "
                         f"β_t = 1/(T − t + 1)), got transition={transition!r}; use 'cosine' or 'linear'")
    if schedule == "linear":
        return linear_betas(T, beta_start, beta_end)
    return cosine_betas(T) if schedule == "cosine" else mutual_information_betas(T)
