"""Class-conditional VP-SDE on eight Gaussians (the label is the Gaussian), for classifier-free guidance.

Trains on a CPU in a few minutes; sample one Gaussian with `scoresde sample --workdir W --labels 3`, or a
grid of classes × guidance scales with `--labels all --guidance 0,1,4`.
"""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "toy.py")
    c.data.dataset = "eight_gaussians"
    c.model.num_classes = 8
    c.loss.p_uncond = 0.1
    c.training.n_iters = 5000
    return c
