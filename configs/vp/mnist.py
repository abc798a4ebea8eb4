"""VP-SDE on MNIST from local IDX files in config.data.root (train-images-idx3-ubyte[.gz] ...)."""
from scoresde.config import default_config


def get_config():
    c = default_config()
    c.data.update(dataset="mnist", root="data/mnist", image_size=28)
    c.model.update(name="unet", ch=64, ch_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(7,), dropout=0.1)
    c.training.update(batch_size=128, n_iters=100_000, ema_rate=0.9999)
    c.optim.warmup = 1000
    return c
