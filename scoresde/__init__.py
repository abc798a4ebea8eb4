"""scoresde: continuous-time score-based diffusion (Song et al. 2021), with DDPM as its VP special case."""
from . import analytic, likelihood, losses, metrics, parameterization, sampling
from .schedules import CosineSchedule, DiscreteSchedule, LinearSchedule
from .sde import SDE, ReverseSDE, VESDE, VPSDE, subVPSDE
from .run import Run, load_run

__version__ = "0.2.0"
__all__ = ["load_run", "Run", "SDE", "ReverseSDE", "VPSDE", "subVPSDE", "VESDE", "LinearSchedule", "CosineSchedule",
           "DiscreteSchedule",
           "analytic", "likelihood", "losses", "metrics", "parameterization", "sampling"]
