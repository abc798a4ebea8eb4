"""DDPM++ (cont.) on CIFAR-10 with the sub-VP SDE (Song et al. 2021, Table 3)."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "../vp/ddpmpp_cifar10_continuous.py")
    c.sde.type = "subvp"
    return c
