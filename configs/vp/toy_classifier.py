"""A noise-aware classifier p(y | x_t, t) of which Gaussian of eight Gaussians a noisy point came from, on the
VP-SDE of toy.py: guides a diffusion model of the same data (scoresde sample --classifier WORKDIR)."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "toy.py")
    c.data.dataset = "eight_gaussians"
    c.family = "classifier"
    c.model.update(num_classes=8, ch=32, num_res_blocks=2)
    c.training.update(n_iters=2000, eval_every=500)
    return c
