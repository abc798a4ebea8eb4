"""Config-driven training: `train(config, workdir)`, EMA and atomic checkpoints."""
from .ema import EMA
from .loop import Trainer, train

__all__ = ["Trainer", "train", "EMA"]
