"""Score networks (a DDPM/DDPM++-style U-Net for images, a small MLP for low-dimensional data) and a noise-aware
classifier for classifier guidance."""
from .classifier import NoisyClassifier
from .mlp import MLP
from .unet import UNet

MODELS = {"unet": UNet, "mlp": MLP, "classifier": NoisyClassifier}

__all__ = ["UNet", "MLP", "NoisyClassifier", "MODELS"]
