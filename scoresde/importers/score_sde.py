"""score_sde_pytorch's checkpoints (Song et al. 2021) as scoresde runs.

A score_sde checkpoint is {'model': state dict, 'ema': {'decay', 'num_updates', 'shadow_params'}, 'optimizer', 'step'},
written by torch.save from a DataParallel model (keys start with 'module.'). The EMA's shadow_params are a list
in the order of the model's trainable parameters (Fourier features are not trained, so they have none). Both
checkpoints/checkpoint_N.pth and checkpoints-meta/checkpoint.pth have this layout.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import checkpoint as ckpt
from .. import families
from ..config import validate
from .run_files import write_run

TRAINABLE_EXCLUDED = ("all_modules.0.W",)  # Fourier features: a parameter with requires_grad=False in score_sde
BUFFERS = ("sigmas",)  # score_sde's NCSN++ keeps its noise levels as a buffer; scoresde computes them


def read_weights(path) -> dict:
    """torch.load with weights_only=True: tensors and plain values, nothing executed; a damaged file names itself."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, zero-filled, or objects that would need code to rebuild
        reason = ckpt.failure_reason(e)
        raise ValueError(f"cannot read checkpoint {path}: {type(e).__name__}: {reason}") from None


def _strip(state: dict) -> dict:
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def ema_weights(model_state: dict, ema: dict, path) -> dict:
    """The model's state with each trainable parameter replaced by its EMA shadow, matched by position."""
    shadow = ema.get("shadow_params") if isinstance(ema, dict) else None
    if not isinstance(shadow, (list, tuple)):
        raise ValueError(f"{path} has no EMA weights (no 'ema' with 'shadow_params'); import its raw model weights "
                         f"with --weights model (weights='model')")
    trainable = [k for k in model_state if k not in BUFFERS and k not in TRAINABLE_EXCLUDED]
    if len(shadow) != len(trainable):
        raise ValueError(f"{path}: the EMA has {len(shadow)} shadow tensors but the model has {len(trainable)} "
                         f"trainable parameters; the checkpoint is not of a score_sde NCSN++ model")
    out = dict(model_state)
    for key, value in zip(trainable, shadow):
        if tuple(value.shape) != tuple(model_state[key].shape):
            raise ValueError(f"{path}: EMA shadow tensor for {key} has shape {list(value.shape)}, the model's "
                             f"{list(model_state[key].shape)}")
        out[key] = value
    return out


def to_scoresde(model: torch.nn.Module, theirs: dict, path) -> dict:
    """score_sde's state dict under scoresde's names, checked key by key and shape by shape."""
    mapping = {k: "net." + v for k, v in model.net.score_sde_key_map().items()}
    ours = model.state_dict()
    unknown = [k for k in theirs if k not in mapping and k not in BUFFERS]
    if unknown:
        raise ValueError(f"{path}: checkpoint key {unknown[0]} is not in the network of the given config "
                         f"({len(unknown)} such keys); is --config the checkpoint's config?")
    for key, mine in mapping.items():
        if key not in theirs:
            raise ValueError(f"{path}: the config's network has {key} ({mine}), which the checkpoint lacks; is "
                             f"--config the checkpoint's config?")
        if tuple(theirs[key].shape) != tuple(ours[mine].shape):
            raise ValueError(f"{path}: checkpoint key {key} has shape {list(theirs[key].shape)}, the config's network "
                             f"expects {list(ours[mine].shape)} ({mine}); is --config the checkpoint's config?")
    return {mine: theirs[key].to(ours[mine].dtype) for key, mine in mapping.items()}


def import_score_sde(path, workdir, config=None, weights: str = "ema", channels: int | None = None) -> Path:
    """Write the score_sde checkpoint at `path` as a scoresde run in `workdir`, for `config` (the scoresde config
    of the same model, e.g. configs/vp/ddpmpp_cifar10_continuous.py). weights: "ema" (the EMA shadow, as score_sde
    samples) or "model" (the raw weights). Returns the workdir."""
    if config is None:
        raise ValueError("importing a score_sde checkpoint needs its config (--config FILE): the checkpoint holds "
                         "weights only, not the architecture")
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    config = validate(config)
    if config.model.name != "ncsnpp":
        raise ValueError(f"a score_sde checkpoint holds an NCSN++ / DDPM++ network: the config needs "
                         f"model.name='ncsnpp', got {config.model.name!r}")
    if not config.data.image_size:
        raise ValueError("the config must give config.data.image_size (the network's resolution)")
    state = read_weights(path)
    if not isinstance(state, dict) or "model" not in state:
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} is not a score_sde checkpoint: it needs a 'model' state dict, got {got}")
    theirs = _strip(state["model"])
    family = families.get_family(config)
    size = config.data.image_size
    probe = family.model(config, (3, size, size)) if channels is None else None
    if channels is None:  # the input convolution's weight [nf, C, 3, 3] gives the image channels
        conv_in = next(k for k, v in probe.net.score_sde_key_map().items() if v == "conv_in.weight")
        channels = int(theirs[conv_in].shape[1]) if conv_in in theirs else 3
    model = family.model(config, (channels, size, size))
    chosen = ema_weights(theirs, state.get("ema"), path) if weights == "ema" else theirs
    ema_state, model_state = to_scoresde(model, chosen, path), to_scoresde(model, theirs, path)
    model.load_state_dict(ema_state)  # strict: every parameter present
    return write_run(workdir, config, model_state, ema_state, shape=(channels, size, size),
                     step=int(state.get("step", 0)), ema_updates=int((state.get("ema") or {}).get("num_updates", 0) or 0),
                     source="score_sde", file=path, weights=weights)
