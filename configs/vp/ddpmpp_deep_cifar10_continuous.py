"""DDPM++ cont. (deep) on CIFAR-10, VP: 8 residual blocks per level (score_sde's vp/cifar10_ddpmpp_deep_continuous);
106,632,579 parameters."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "ddpmpp_cifar10_continuous.py")
    c.model.num_res_blocks = 8
    c.training.n_iters = 950_000
    return c
