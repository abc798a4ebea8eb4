"""NCSN++ (cont.) on CIFAR-10 with the VE SDE (Song et al. 2021, Table 3).

NCSN++ is not implemented in scoresde yet: `scoresde train` stops at start with that message.
"""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "../vp/ddpmpp_cifar10_continuous.py")
    c.sde.update(type="ve", sigma_min=0.01, sigma_max=50.0)
    c.model.update(name="ncsnpp", embedding="fourier", fourier_scale=16.0)
    c.loss.eps = 1e-5
    return c
