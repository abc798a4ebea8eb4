"""VE SDE on the toy checkerboard, with the likelihood-free "simple" weighting λ = σ²."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "../vp/toy.py")
    c.sde.update(type="ve", sigma_min=0.01, sigma_max=5.0)  # σ_max ≈ the largest pairwise distance of the data
    c.model.parameterization = "score"
    c.sampling.steps = 500
    return c
