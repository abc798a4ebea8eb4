"""Score networks: a DDPM/DDPM++-style U-Net for images and a small MLP for low-dimensional data."""
from .mlp import MLP
from .unet import UNet

MODELS = {"unet": UNet, "mlp": MLP}

__all__ = ["UNet", "MLP", "MODELS"]
