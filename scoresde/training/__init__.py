"""Config-driven training: `train(config, workdir)`, EMA and atomic checkpoints."""
from .ema import EMA
from .loop import NonFiniteTraining, Preempted, Trainer, train

__all__ = ["Trainer", "train", "EMA", "Preempted", "NonFiniteTraining"]
