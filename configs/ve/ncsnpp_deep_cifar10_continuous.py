"""NCSN++ cont. (deep) on CIFAR-10, VE: 8 residual blocks per level (score_sde's ve/cifar10_ncsnpp_deep_continuous);
107,587,075 parameters."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "ncsnpp_cifar10_continuous.py")
    c.model.num_res_blocks = 8
    c.training.n_iters = 950_000
    return c
