"""Image data as integer states for D3PM: pixel u ∈ [0, 1] becomes round(u (K − 1)), K levels in 0..K−1.

scikit-learn's digits (17 grey levels 0..16, stored as round(v · 255/16)) come back exactly with K = 17;
MNIST with K = 2 is binarised at u = 1/2.
"""
from __future__ import annotations

import torch

from .._utils import check_positive_int


class QuantizedImages:
    """Wraps an image data set (scaled to [0, 1]) so that batches and held-out data are long tensors of states."""

    is_image = True

    def __init__(self, data, num_states: int):
        if getattr(data, "centered", False):
            raise ValueError("QuantizedImages needs images scaled to [0, 1]; build the data with centered=False")
        self.data, self.K = data, check_positive_int(num_states, "num_states", minimum=2)
        self.shape = data.shape
        self.eval_data = self.quantize(data.eval_data)
        self.eval_labels, self.num_classes = data.eval_labels, data.num_classes  # class labels pass through

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return (x * (self.K - 1)).round().long()

    def train_batch(self, step: int, batch_size: int, seed: int):
        """(states [B, C, H, W], labels [B] or None)."""
        x, y = self.data.train_batch(step, batch_size, seed)
        return self.quantize(x), y

    def to_display(self, x: torch.Tensor) -> torch.Tensor:
        return states_to_display(x, self.K)


def states_to_display(x: torch.Tensor, num_states: int) -> torch.Tensor:
    """States 0..K−1 as grey levels in [0, 1]; [MASK] (state K) shows as white."""
    return (x.float() / (num_states - 1)).clamp(0, 1)
