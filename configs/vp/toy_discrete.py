"""The toy run with DDPM's discrete loss (integer timesteps), to compare with vp/toy.py on the same model."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "toy.py")
    c.loss.continuous = False
    c.model.time_scale = 1.0  # the network receives integer steps 0..N-1
    return c
