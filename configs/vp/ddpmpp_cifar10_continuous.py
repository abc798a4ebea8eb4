"""DDPM++ (cont.) on CIFAR-10 with the VP SDE (Song et al. 2021, Table 3): score_sde's vp/cifar10_ddpmpp_continuous.

The `ncsnpp` network as DDPM++: BigGAN residual blocks, 4 per level, no FIR, no progressive paths, positional
embedding of 999·t, ε-prediction; 61,804,419 parameters, as score_sde's (benchmarks/parity.py).
"""
from scoresde.config import default_config


def get_config():
    c = default_config()
    c.data.update(dataset="cifar10", root="data/cifar10", image_size=32, random_flip=True, centered=True, n_eval=10_000)
    c.model.update(name="ncsnpp", parameterization="eps", ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4,
                   attn_resolutions=(16,), dropout=0.1, skip_rescale=True, embedding="sinusoidal")
    c.model.ncsnpp.update(resblock="biggan", fir=False, progressive="none", progressive_input="none",
                          progressive_combine="sum", init_scale=0.0, scale_by_sigma=False)
    c.sde.update(type="vp", beta_min=0.1, beta_max=20.0, N=1000)
    c.loss.update(continuous=True, weighting="simple", eps=1e-5, reduce="mean")
    c.training.update(batch_size=128, n_iters=1_300_000, ema_rate=0.9999, snapshot_every=50_000)
    c.optim.update(lr=2e-4, warmup=5000, grad_clip=1.0)
    c.sampling.update(name="euler_maruyama", steps=1000)  # score_sde: pc with euler_maruyama and no corrector
    return c
