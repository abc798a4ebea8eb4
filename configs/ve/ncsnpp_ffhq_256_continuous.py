"""NCSN++ (cont.) on 256×256 FFHQ with the VE SDE (score_sde's ve/ffhq_256_ncsnpp_continuous): the CelebA-HQ
network and settings on another image folder (data/ffhq256/<class>/*.png); 65,574,549 parameters."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "ncsnpp_celebahq_256_continuous.py")
    c.data.root = "data/ffhq256"
    return c
