"""DDPM++ (cont.) on CIFAR-10, VP (Song et al. 2021, Table 3): continuous time, skip rescaling.

Differences from the paper's DDPM++: scoresde's U-Net has no FIR resampling and no progressive
input/output paths, and uses 2 rather than 4 residual blocks per level by default.
"""
from scoresde.config import default_config


def get_config():
    c = default_config()
    c.data.update(dataset="cifar10", root="data/cifar10", image_size=32, random_flip=True, n_eval=10_000)
    c.model.update(name="unet", ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1,
                   skip_rescale=True, time_scale=999.0)
    c.loss.update(continuous=True, weighting="simple", eps=1e-5)
    c.training.update(batch_size=128, n_iters=1_300_000, ema_rate=0.9999)
    c.sampling.update(name="pc", steps=1000)
    return c
