"""D3PM: diffusion on discrete states (Austin et al. 2021). Transitions, the forward chain and its posterior, the
x₀-parameterised reverse process, the hybrid loss, ancestral sampling and the NLL bound in bits/dim."""
from .data import QuantizedImages, states_to_display
from .likelihood import nll_bits_per_dim
from .model import CategoricalUNet
from .losses import D3PMLoss, vlb_term
from .process import D3PM, kl_categorical, sample_categorical
from .sampling import SAMPLERS, AncestralSampler, get_sampler
from .transitions import (SCHEDULES, TRANSITIONS, AbsorbingTransition, GaussianTransition, Transition,
                          UniformTransition, cosine_betas, linear_betas, make_betas, mutual_information_betas)

__all__ = ["QuantizedImages", "states_to_display", "CategoricalUNet", "D3PM", "D3PMLoss", "vlb_term", "nll_bits_per_dim", "kl_categorical", "sample_categorical", "SAMPLERS",
           "AncestralSampler", "get_sampler", "SCHEDULES", "TRANSITIONS", "Transition", "UniformTransition",
           "AbsorbingTransition", "GaussianTransition", "cosine_betas", "linear_betas", "make_betas",
           "mutual_information_betas"]
