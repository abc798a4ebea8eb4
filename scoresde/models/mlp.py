"""A small time-conditioned MLP score network for low-dimensional data."""
from __future__ import annotations

import torch
from torch import nn

from .layers import sinusoidal_embedding


class MLP(nn.Module):
    """f(x, t, y) for x [B, dim]: x and a sinusoidal embedding of t (plus a learnt one of the label y; y = None
    or num_classes is "no label") go through SiLU layers."""

    def __init__(self,
                 dim: int = 2,                 # data dimension
                 hidden: int = 256,            # width of each hidden layer
                 layers: int = 3,              # number of hidden layers
                 emb_dim: int = 64,            # size of the time embedding
                 time_scale: float = 1.0,      # t is multiplied by this before embedding (1000 for t in [0, 1])
                 num_classes: int | None = None,  # class-conditional with this many classes (+1 "no label")
                 out_dim: int | None = None,   # output size (default dim; 2·dim for a learned variance)
                 ):
        super().__init__()
        self.emb_dim, self.time_scale, self.num_classes = emb_dim, time_scale, num_classes
        self.data_shape = (dim,)  # what x [B, dim] must look like per sample
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        sizes = [dim + emb_dim] + [hidden] * layers
        blocks = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            blocks += [nn.Linear(a, b), nn.SiLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, out_dim or dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = sinusoidal_embedding(t * self.time_scale, self.emb_dim).to(x.dtype)
        if self.label_emb is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.num_classes, device=x.device, dtype=torch.long)
            emb = emb + self.label_emb(y).to(x.dtype)
        return self.net(torch.cat([x, emb], dim=1))
