"""NCSN++ (cont.) on CIFAR-10 with the VP SDE (score_sde's vp/cifar10_ncsnpp_continuous): DDPM++ plus FIR
resampling and the residual input pyramid; 62,693,251 parameters."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "ddpmpp_cifar10_continuous.py")
    c.model.ncsnpp.update(fir=True, progressive_input="residual")
    return c
