"""PriorGrad (Lee et al. 2022) on eight Gaussians: a class-conditional VP-SDE that diffuses towards each class's own
N(μ_k, diag σ_k²), measured on the training data, instead of N(0, I).

Trains on a CPU in a few minutes; `scoresde sample --workdir W --labels all` draws every class from its prior.
Compare with configs/vp/toy_conditional.py (the same model with the standard prior), or run benchmarks/priorgrad.py.
"""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "toy_conditional.py")
    c.sde.prior = "data"
    c.sde.prior_per_class = True
    c.sde.prior_samples = 10_000
    c.loss.p_uncond = 0.0  # the prior already depends on the class; a label is always given
    return c
