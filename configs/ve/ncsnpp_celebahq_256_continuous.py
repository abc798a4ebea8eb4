"""NCSN++ (cont.) on 256×256 CelebA-HQ with the VE SDE (score_sde's ve/celebahq_256_ncsnpp_continuous).

Seven levels (1, 1, 2, 2, 2, 2, 2), 2 blocks each, the output_skip / input_skip pyramids, σ_max = 348;
65,574,549 parameters. The images come from an image folder (data/celebahq256/<class>/*.png). score_sde
samples with Langevin snr 0.075: scoresde sample --workdir W --option snr=0.075.
"""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "ncsnpp_cifar10_continuous.py")
    c.data.update(dataset="image_folder", root="data/celebahq256", image_size=256, random_flip=True, n_eval=1000)
    c.sde.update(sigma_max=348.0, N=2000)
    c.model.update(ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2)
    c.model.ncsnpp.update(progressive="output_skip", progressive_input="input_skip", progressive_combine="sum")
    c.training.update(batch_size=64, n_iters=2_400_000)
    c.sampling.update(name="pc", steps=2000, n=16)
    return c
