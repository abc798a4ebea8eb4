"""diffusers pipeline folders as scoresde runs: a `UNet2DModel` with its scheduler's config.

    ScoreSdeVePipeline (google/ncsnpp-*): a Fourier-embedded UNet2DModel that takes σ and returns the score
        (it divides by σ itself), with a ScoreSdeVeScheduler: the VE SDE σ_min (σ_max/σ_min)^t;
    DDPMPipeline: a UNet2DModel of DDPM's step index with a DDPMScheduler of linear betas: the discrete VP SDE.

The folder's JSON configs are read as data and its weights with safetensors or torch.load(weights_only=True); no
`from_pretrained`, nothing fetched, nothing run. diffusers builds the network (`pip install 'scoresde[diffusers]'`).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from .. import families
from ..config import default_config, validate
from .run_files import write_run


def _json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist: a diffusers pipeline folder has {what}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def read_weights(folder: Path) -> dict:
    """The UNet's weights: diffusion_pytorch_model.safetensors, else diffusion_pytorch_model.bin (weights only)."""
    safe, binary = folder / "diffusion_pytorch_model.safetensors", folder / "diffusion_pytorch_model.bin"
    try:
        if safe.is_file():
            from safetensors.torch import load_file
            return load_file(str(safe))
        if binary.is_file():
            return torch.load(binary, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, zero-filled, pickled objects
        reason = ckpt.failure_reason(e)
        raise ValueError(f"cannot read the weights in {folder}: {type(e).__name__}: {reason}") from None
    raise FileNotFoundError(f"{folder} has no diffusion_pytorch_model.safetensors or .bin")


def run_config(unet_config: dict, scheduler_config: dict):
    """A scoresde config for the pipeline: model.name='diffusers' with the UNet's config, and the scheduler's SDE."""
    kind = scheduler_config.get("_class_name", "")
    c = default_config()
    size = unet_config.get("sample_size", 32)
    size = size if isinstance(size, int) else size[0]
    c.data.update(dataset="cifar10" if size == 32 else "image_folder", image_size=int(size), centered=True)
    c.model.update(name="diffusers")
    c.model.diffusers.config = json.dumps({k: v for k, v in unet_config.items() if not k.startswith("_")},
                                          sort_keys=True)
    if kind == "ScoreSdeVeScheduler":
        if unet_config.get("time_embedding_type") != "fourier":
            raise ValueError("a ScoreSdeVeScheduler pipeline needs a UNet2DModel with time_embedding_type='fourier'")
        c.sde.update(type="ve", sigma_min=float(scheduler_config.get("sigma_min", 0.01)),
                     sigma_max=float(scheduler_config.get("sigma_max", 1348.0)),
                     N=int(scheduler_config.get("num_train_timesteps", 2000)))
        c.model.update(parameterization="score")
        c.model.diffusers.input = "sigma"
        c.sampling.update(name="pc", steps=int(scheduler_config.get("num_train_timesteps", 2000)))
    elif kind == "DDPMScheduler":
        if scheduler_config.get("beta_schedule", "linear") != "linear" or scheduler_config.get("trained_betas"):
            raise ValueError(f"the import takes DDPM schedulers with linear betas; this one has beta_schedule="
                             f"{scheduler_config.get('beta_schedule')!r}: use scoresde.diffusers_interop in Python")
        prediction = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}[scheduler_config.get("prediction_type",
                                                                                                "epsilon")]
        n = int(scheduler_config.get("num_train_timesteps", 1000))
        c.sde.update(type="vp", beta_min=float(scheduler_config.get("beta_start", 1e-4)) * n,
                     beta_max=float(scheduler_config.get("beta_end", 0.02)) * n, N=n)
        c.model.update(parameterization=prediction)
        c.model.diffusers.input = "index"
        c.loss.continuous = False
        c.sampling.update(name="ancestral", steps=n)
    else:
        raise ValueError(f"the scheduler is a {kind or 'scheduler without _class_name'}; the import takes "
                         f"ScoreSdeVeScheduler and DDPMScheduler pipelines")
    return c


def import_diffusers(path, workdir, config=None, weights: str = "ema", channels=None) -> Path:
    """Write the diffusers pipeline folder at `path` (unet/ and scheduler/) as a scoresde run in `workdir`."""
    if weights != "ema":
        raise ValueError("a diffusers pipeline holds one set of weights (its EMA ones, as published): --weights ema")
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"diffusers pipeline folder {folder} does not exist")
    unet_config = _json(folder / "unet" / "config.json", "unet/config.json")
    scheduler_config = _json(folder / "scheduler" / "scheduler_config.json", "scheduler/scheduler_config.json")
    config = validate(config if config is not None else run_config(unet_config, scheduler_config))
    channels = int(unet_config.get("in_channels", 3))
    shape = (channels, config.data.image_size, config.data.image_size)
    model = families.get_family(config).model(config, shape)
    theirs = read_weights(folder / "unet")
    ours = model.state_dict()
    for key, value in theirs.items():
        mine = "unet." + key
        if mine not in ours:
            raise ValueError(f"{folder}: weight {key} is not in the UNet2DModel of unet/config.json")
        if tuple(value.shape) != tuple(ours[mine].shape):
            raise ValueError(f"{folder}: weight {key} has shape {list(value.shape)}, unet/config.json's network "
                             f"expects {list(ours[mine].shape)}")
    model.load_state_dict({"unet." + k: v for k, v in theirs.items()})
    return write_run(workdir, config, model.state_dict(), shape=shape, source="diffusers", file=folder)
