"""EDM's preconditioning (Karras et al. 2022, Table 1): D(x; σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x; c_noise(σ)).

    EDM:  c_skip = σ_d²/(σ² + σ_d²), c_out = σ σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²), c_noise = ¼ ln σ

On an SDE with x_t = α_t x₀ + σ_t ε, EDM's noise level is σ = σ_t/α_t and its input x_t/α_t, so D predicts x₀
there too (parameterization "edm" in scoresde.parameterization). With unit-variance training targets at every σ
for data of standard deviation σ_d, the network's input and output stay O(1) from σ = 0.002 to 80.
"""
from __future__ import annotations

import torch

SIGMA_DATA = 0.5  # EDM's default σ_d


def edm_coefficients(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA):
    """(c_skip, c_out, c_in, c_noise) of EDM's preconditioning at noise level σ (broadcastable tensors)."""
    s2, d2 = sigma**2, sigma_data**2
    return d2 / (s2 + d2), sigma * sigma_data / (s2 + d2).sqrt(), 1 / (s2 + d2).sqrt(), sigma.log() / 4


def loss_weight(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """λ(σ) = (σ² + σ_d²)/(σ σ_d)² = 1/c_out²: EDM's weight, under which the target of F has unit weight."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def edm_sigma(alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """EDM's noise level of x_t = α_t x₀ + σ_t ε: σ_t/α_t (x_t/α_t = x₀ + (σ_t/α_t) ε)."""
    return sigma / alpha
