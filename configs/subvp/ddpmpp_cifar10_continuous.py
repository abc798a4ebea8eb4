"""DDPM++ (cont.) on CIFAR-10 with the sub-VP SDE
(Song et al. 2021; score_sde's subvp/cifar10_ddpmpp_continuous): the VP config's
network, trained on the sub-VP SDE."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "../vp/ddpmpp_cifar10_continuous.py")
    c.sde.type = "subvp"
    return c
