"""sub-VP SDE on the toy checkerboard."""
from scoresde.config import load_sibling


def get_config():
    c = load_sibling(__file__, "../vp/toy.py")
    c.sde.type = "subvp"
    return c
