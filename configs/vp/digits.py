"""VP-SDE on scikit-learn's 8x8 digits with a small U-Net: trains on a CPU in minutes (pip install 'scoresde[digits]')."""
from scoresde.config import default_config


def get_config():
    c = default_config()
    c.data.update(dataset="digits", image_size=8)
    c.model.update(name="unet", ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0)
    c.training.update(batch_size=128, n_iters=4000, ema_rate=0.999, log_every=50, eval_every=1000,
                      sample_every=1000, save_every=500, snapshot_every=2000)
    c.optim.update(lr=1e-3, warmup=200)
    c.sampling.update(name="euler_maruyama", steps=200, n=64)
    c.eval.n_bpd = 128
    return c
