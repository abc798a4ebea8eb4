"""D3PM with discretised-Gaussian transitions on scikit-learn's 8x8 digits, 17 grey levels as 17 ordinal states
(Austin et al. 2021): trains on a CPU in minutes (pip install 'scoresde[digits]').

    scoresde train --config configs/d3pm/digits.py --workdir runs/d3pm_digits
    scoresde sample --workdir runs/d3pm_digits --steps 100     # ancestral sampling, skipping through Q̄
    scoresde eval --workdir runs/d3pm_digits                    # bits/dim of the T-step bound
"""
from scoresde.config import default_config


def get_config():
    c = default_config()
    c.data.update(dataset="digits", image_size=8, n_eval=297)
    c.family = "d3pm"
    c.sde.N = 1000  # T, the number of steps of the chain
    c.d3pm.update(transition="gaussian", schedule="linear", beta_start=1e-4, beta_end=0.02, num_states=17,
                  hybrid_coeff=0.001)
    c.model.update(name="unet", ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0)
    c.training.update(batch_size=64, n_iters=2000, ema_rate=0.999, log_every=50, eval_every=500,
                      sample_every=1000, save_every=500, snapshot_every=1000)
    c.optim.update(lr=1e-3, warmup=200)
    c.sampling.update(name="ancestral", steps=250, n=64)  # 250 of the T = 1000 steps, skipping through Q̄
    c.eval.update(n_bpd=100, batch_size=100)
    return c
