"""scoresde: continuous-time score-based diffusion (Song et al. 2021), with DDPM as its VP special case."""
from . import (analytic, families, guidance, inverse, likelihood, losses, metrics, parameterization, plots, prior,
               priorgrad, resize, sampling, score, sr3)
from .parameterization import get_score_fn
from .score import Score, as_score
from .schedules import CosineSchedule, DiscreteSchedule, LinearSchedule
from .sde import SDE, EDMSDE, ReverseSDE, VESDE, VPSDE, subVPSDE
from .run import Run, load_run

__version__ = "0.4.1"
__all__ = ["load_run", "Run", "get_score_fn", "Score", "as_score", "SDE", "ReverseSDE", "VPSDE", "subVPSDE", "VESDE", "EDMSDE", "LinearSchedule", "CosineSchedule",
           "DiscreteSchedule",
           "analytic", "families", "guidance", "inverse", "likelihood", "losses", "metrics", "parameterization", "plots", "prior",
           "priorgrad", "resize", "sampling", "score", "sr3"]
