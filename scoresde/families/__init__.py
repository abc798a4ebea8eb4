"""The model families, by config.family: each declares in one `Family` what differs between kinds of diffusion model.

Adding a family is its module plus one `register` call; the trainer, `Run`, the CLI, `compare` and the config
read its hooks and name none of them.

    gaussian     score models of the Gaussian SDEs (vp, subvp, ve), class-conditional, PriorGrad's prior
    classifier   a noise-aware classifier p(y | x_t, t) for classifier guidance
    sr3          SR3 super-resolution, conditioned on a low-resolution image
    d3pm         D3PM, a discrete-state diffusion of quantised images
"""
from __future__ import annotations

from .._utils import check_choice
from .base import Family
from .classifier import CLASSIFIER
from .d3pm import D3PM
from .gaussian import GAUSSIAN
from .sr3 import SR3

DEFAULT = "gaussian"  # config.family of the default config
FAMILIES: dict[str, Family] = {f.name: f for f in (GAUSSIAN, CLASSIFIER, SR3, D3PM)}
# What may change when a run of any family resumes: how long and where it trains, how often it logs, and how it samples
# and evaluates. Every other key of the generic sections and of the run's own family's sections defines the run.
MAY_CHANGE_ON_RESUME = ("training.n_iters", "training.device", "training.mixed_precision", "training.ema_warmup",
                        "training.batch_per_device", "training.checkpoint_activations", "training.compile",
                        "training.channels_last", "training.max_nonfinite",
                        "training.log_every", "training.eval_every", "training.sample_every", "training.save_every",
                        "training.snapshot_every", "sampling", "eval")


def register(family: Family) -> Family:
    """Add a family under family.name (its config sections join the default config); returns it."""
    if not isinstance(family, Family):
        raise TypeError(f"family must be a scoresde.families.Family, got {type(family).__name__}")
    taken = {s for f in FAMILIES.values() if f.name != family.name for s in f.config}
    clash = sorted(set(family.config) & (taken | {"data", "model", "sde", "loss", "optim", "training", "sampling",
                                                   "eval", "family"}))
    if clash:
        raise ValueError(f"family {family.name!r} adds config section(s) {clash}, which another part of the config "
                         f"already has")
    FAMILIES[family.name] = family
    return family


def get_family(config) -> Family:
    """The family that config.family names."""
    return FAMILIES[check_choice(config.family, "config.family", FAMILIES)]


def config_sections() -> dict:
    """{section: {key: default}} of every family's own config sections."""
    return {section: dict(keys) for f in FAMILIES.values() for section, keys in f.config.items()}


def legacy_family(saved: dict) -> str:
    """The family of a saved config from before config.family existed (read from the keys that chose it then)."""
    for family in FAMILIES.values():
        if family.legacy(saved):
            return family.name
    return DEFAULT


def run_defining(config, key: str) -> bool:
    """Whether a dotted config key defines the run of `config` (a change on resume is refused): every key but
    MAY_CHANGE_ON_RESUME, its family's may_change, and the sections of other families."""
    family = get_family(config)
    section = key.split(".")[0]
    if section in config_sections() and section not in family.config:
        return False
    return not any(key == k or key.startswith(k + ".") for k in MAY_CHANGE_ON_RESUME + tuple(family.may_change))


__all__ = ["Family", "FAMILIES", "DEFAULT", "MAY_CHANGE_ON_RESUME", "register", "get_family", "config_sections",
           "legacy_family", "run_defining", "GAUSSIAN", "CLASSIFIER", "SR3", "D3PM"]
