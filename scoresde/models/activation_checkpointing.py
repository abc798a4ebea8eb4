"""Activation checkpointing (Chen et al. 2016): a network's blocks keep only their inputs in the forward pass and
recompute their activations in the backward pass, trading compute for memory.

A network declares which of its submodules are blocks worth recomputing with a class attribute
`checkpoint_blocks` (a tuple of module classes). `enable` finds every such network inside a model (through
wrappers such as EDM's preconditioner) and wraps the forward of each outermost block in
torch.utils.checkpoint.checkpoint (non-reentrant, with the RNG state preserved, so dropout draws the same mask
twice and the gradients are the same). Weights and their names do not change, so checkpoints are unaffected.
"""
from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def _checkpointed(forward, module: nn.Module):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        if module.training and torch.is_grad_enabled():
            return checkpoint(forward, *args, use_reentrant=False, **kwargs)
        return forward(*args, **kwargs)
    return run


def enable(model: nn.Module) -> int:
    """Recompute the declared blocks of every network in `model` during backward; returns how many were wrapped.

    Raises ValueError, naming the model, when no network inside it declares `checkpoint_blocks`."""
    networks = [m for m in model.modules() if getattr(type(m), "checkpoint_blocks", ())]
    if not networks:
        raise ValueError(f"config.training.checkpoint_activations=True: {type(model).__name__} declares no blocks to "
                         f"recompute; networks that do: UNet, NCSNpp, SongUNet, DhariwalUNet")
    kinds = tuple(kind for net in networks for kind in type(net).checkpoint_blocks)
    wrapped = []  # names of the wrapped blocks: a block inside one of them is already recomputed
    for name, sub in model.named_modules():
        if isinstance(sub, kinds) and not any(name.startswith(outer + ".") for outer in wrapped):
            sub.forward = _checkpointed(sub.forward, sub)
            wrapped.append(name)
    return len(wrapped)
