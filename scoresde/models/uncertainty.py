"""EDM2's learned uncertainty u(σ) (Karras et al. 2024, Sec. 5 and App. B.2): a network with a log-variance head.

The loss becomes E[λ(σ)/e^{u(σ)} ‖D − x₀‖² + u(σ)] (EDM2, Eq. 8): u learns the log of the loss each σ leaves, which
weights every σ equally at the optimum without hand tuning. u reads only the network's noise label (c_noise = ¼ ln σ
under EDM's preconditioning) through fixed random Fourier features and a linear layer, started at 0 so training
begins as the plain EDM loss. Sampling never calls it: the wrapper's forward returns the network's output.
"""
from __future__ import annotations

import math

import torch
from torch import nn

FOURIER_FEATURES = 128  # EDM2's logvar_channels
FOURIER_SEED = 0  # the frequencies and phases are fixed buffers, drawn from this seed


class WithUncertainty(nn.Module):
    """net(x, label[, y]) with u(label): forward(..., return_logvar=True) returns (output, u [B])."""

    def __init__(self, net: nn.Module, features: int = FOURIER_FEATURES):
        super().__init__()
        self.net = net
        g = torch.Generator().manual_seed(FOURIER_SEED)
        self.register_buffer("freqs", 2 * math.pi * torch.randn(features, generator=g))
        self.register_buffer("phases", 2 * math.pi * torch.rand(features, generator=g))
        self.logvar = nn.Linear(features, 1)
        nn.init.zeros_(self.logvar.weight)
        nn.init.zeros_(self.logvar.bias)
        self.num_classes = getattr(net, "num_classes", 0)
        self.data_shape = getattr(net, "data_shape", None)

    def uncertainty(self, label: torch.Tensor) -> torch.Tensor:
        """u(label) [B]: √2 cos(label·f + φ) features, then a linear layer (EDM2's MPFourier and logvar_linear)."""
        features = math.sqrt(2) * torch.cos(label.float()[:, None] * self.freqs + self.phases)
        return self.logvar(features.to(self.logvar.weight.dtype))[:, 0]

    def forward(self, x, label, *y, return_logvar: bool = False):
        out = self.net(x, label, *y)
        if not return_logvar:
            return out
        label = label.expand(x.shape[0]) if label.ndim == 0 else label
        return out, self.uncertainty(label).to(out.dtype)
