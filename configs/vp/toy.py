"""VP-SDE on the 2-D checkerboard with a small MLP: trains on a CPU in a few minutes."""
from scoresde.config import default_config


def get_config():
    c = default_config()
    c.data.dataset = "checkerboard"
    c.model.update(name="mlp", hidden=256, layers=4)
    c.training.update(batch_size=512, n_iters=20_000, ema_rate=0.999, log_every=100, eval_every=1000,
                      sample_every=5000, save_every=1000, snapshot_every=5000)
    c.optim.update(lr=2e-3, warmup=200)
    c.sampling.update(name="euler_maruyama", steps=200, n=2000)
    c.eval.n_bpd = 500
    return c
