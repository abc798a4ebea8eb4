"""A template for your own images: every PNG/JPEG under config.data.root (one size; sub-folders are classes),
VP-SDE, a small U-Net. pip install 'scoresde[images]'; docs/own-data.md walks through it."""
from scoresde.config import default_config


def get_config():
    c = default_config()
    c.data.update(dataset="image_folder", root="data/images", n_eval=100, centered=True, random_flip=False)
    c.model.update(name="unet", parameterization="v", ch=32, ch_mult=(1, 2, 2), num_res_blocks=1,
                   attn_resolutions=(), dropout=0.0)
    c.training.update(batch_size=64, n_iters=5000, ema_rate=0.999, log_every=50, eval_every=500,
                      sample_every=1000, save_every=250, snapshot_every=1000)
    c.optim.update(lr=1e-3, warmup=100, schedule="cosine")
    c.sampling.update(name="dpm_solver", steps=20, n=64)
    c.eval.update(n_bpd=100, batch_size=100)
    return c
