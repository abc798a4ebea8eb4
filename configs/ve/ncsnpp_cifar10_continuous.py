"""NCSN++ (cont.) on CIFAR-10 with the VE SDE (Song et al. 2021, Table 3): score_sde's ve/cifar10_ncsnpp_continuous.

FIR resampling, the residual input pyramid, Fourier features of log σ(t) and the output divided by σ(t): the
network is the score. Data in [0, 1] (the network maps them to [-1, 1]); 62,758,915 parameters, as score_sde's.
"""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "../vp/ddpmpp_cifar10_continuous.py")
    c.data.centered = False
    c.sde.update(type="ve", sigma_min=0.01, sigma_max=50.0, N=1000)
    c.model.update(parameterization="score", embedding="fourier", fourier_scale=16.0)
    c.model.ncsnpp.update(fir=True, progressive_input="residual", scale_by_sigma=True)
    c.loss.update(reduce="sum")  # score_sde's VE objective sums over pixels
    c.training.ema_rate = 0.999
    c.sampling.update(name="pc", steps=1000, n=64)  # reverse diffusion + Langevin, snr 0.16
    return c
