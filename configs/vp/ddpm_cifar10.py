"""DDPM on CIFAR-10 (Ho et al. 2020): VP, discrete time, L_simple, the 35.7M-parameter U-Net.

Reads the extracted CIFAR-10 python pickles from config.data.root (cifar-10-batches-py/).
"""
from scoresde.config import default_config


def get_config():
    c = default_config()
    c.data.update(dataset="cifar10", root="data/cifar10", image_size=32, random_flip=True, n_eval=10_000)
    c.model.update(name="unet", ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1,
                   time_scale=1.0)  # integer timesteps 0..999
    c.loss.update(continuous=False, weighting="simple")
    c.training.update(batch_size=128, n_iters=800_000, ema_rate=0.9999)
    c.optim.update(lr=2e-4, warmup=5000, grad_clip=1.0)
    c.sampling.update(name="ancestral", steps=1000)
    return c
