"""EDM's preconditioning (Karras et al. 2022, Table 1): D(x; σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x; c_noise(σ)).

    EDM:  c_skip = σ_d²/(σ² + σ_d²), c_out = σ σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²), c_noise = ¼ ln σ
    VP:   c_skip = 1, c_out = −σ, c_in = 1/√(σ² + 1), c_noise = (M − 1) σ_vp⁻¹(σ), M = 1000   (F predicts ε)
    VE:   c_skip = 1, c_out = σ, c_in = 1, c_noise = ln(σ/2)                               (F predicts −ε)
VP's σ_vp(t) = √(exp(½ β_d t² + β_min t) − 1) is EDM's VP schedule (β_d = 19.9, β_min = 0.1): scoresde's VPSDE with
β from 0.1 to 20 has σ_t/α_t = σ_vp(t), so there c_noise = 999 t, DDPM's step index.

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


VP_BETA_D, VP_BETA_MIN, VP_M = 19.9, 0.1, 1000  # EDM's VPPrecond


def vp_sigma(t: torch.Tensor, beta_d: float = VP_BETA_D, beta_min: float = VP_BETA_MIN) -> torch.Tensor:
    """σ_vp(t) = √(exp(½ β_d t² + β_min t) − 1), the noise level of EDM's VP schedule at t ∈ (0, 1]."""
    return torch.expm1(0.5 * beta_d * t**2 + beta_min * t).sqrt()


def vp_sigma_inv(sigma: torch.Tensor, beta_d: float = VP_BETA_D, beta_min: float = VP_BETA_MIN) -> torch.Tensor:
    """The t with σ_vp(t) = σ: (√(β_min² + 2 β_d ln(1 + σ²)) − β_min)/β_d."""
    return ((beta_min**2 + 2 * beta_d * torch.log1p(sigma**2)).sqrt() - beta_min) / beta_d


def vp_coefficients(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA):
    """(c_skip, c_out, c_in, c_noise) of EDM's VP baseline (σ_d is not used)."""
    one = torch.ones_like(sigma)
    return one, -sigma, 1 / (sigma**2 + 1).sqrt(), (VP_M - 1) * vp_sigma_inv(sigma)


def ve_coefficients(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA):
    """(c_skip, c_out, c_in, c_noise) of EDM's VE baseline (σ_d is not used)."""
    one = torch.ones_like(sigma)
    return one, sigma.clone(), one.clone(), (sigma / 2).log()


# parameterisation name -> its coefficients (sigma, sigma_data) -> (c_skip, c_out, c_in, c_noise)
PRECONDITIONINGS = {"edm": edm_coefficients, "edm_vp": vp_coefficients, "edm_ve": ve_coefficients}


def loss_weight(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """λ(σ) = (σ² + σ_d²)/(σ σ_d)² = 1/c_out²: EDM's weight, under which the target of F has unit weight."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def edm_sigma(alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """EDM's noise level of x_t = α_t x₀ + σ_t ε: σ_t/α_t (x_t/α_t = x₀ + (σ_t/α_t) ε)."""
    return sigma / alpha
