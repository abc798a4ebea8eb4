"""Feature networks for FID and KID: Inception-v3 from a local weights file, or a small classifier trained on the data.

FID is the Fréchet distance on Inception-v3 pool features (Heusel et al. 2017). `--inception-path` takes
either pytorch-fid's standard `pt_inception-2015-12-05-*.pth` state dict (loaded into
`scoresde.inception.FIDInceptionV3`, no torchvision needed) or a TorchScript extractor such as NVlabs'
`inception-2015-12-05.pt`. Nothing is downloaded. Without Inception, the same Fréchet distance and KID
are computed on a classifier's penultimate features, which makes comparisons possible offline on digits
or MNIST (they are then not comparable to published FIDs).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


class Classifier(nn.Module):
    """A small CNN; `features` returns its 128-d penultimate layer."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(in_channels, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)
        self.fc, self.head = nn.Linear(64 * 16, 128), nn.Linear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.silu(self.conv1(x)), 2)
        h = F.adaptive_avg_pool2d(F.silu(self.conv2(h)), 4)
        return F.silu(self.fc(h.flatten(1)))

    def forward(self, x):
        return self.head(self.features(x))


def train_classifier(images: torch.Tensor, labels: torch.Tensor, steps: int = 1500, batch_size: int = 128,
                     seed: int = 0, device="cpu") -> Classifier:
    """Fit the classifier on scaled images [N, C, H, W] and integer labels (a minute on a CPU for digits)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = Classifier(images.shape[1], int(labels.max()) + 1).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        idx = torch.randint(len(images), (batch_size,), generator=g)
        loss = F.cross_entropy(net(images[idx].to(device)), labels[idx].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def classifier_features(workdir: Path, data, labels, device, steps: int = 1500) -> callable:
    """A function images → features, from WORKDIR/feature_classifier.pt (trained and cached on first use)."""
    net = feature_classifier(workdir, data, labels, device, steps)
    return lambda x: net.features(x.to(device)).detach()


def feature_classifier(workdir: Path, data, labels, device, steps: int = 1500) -> Classifier:
    """The classifier behind classifier_features (its logits judge the class of guided samples)."""
    path = Path(workdir) / "feature_classifier.pt"
    if path.exists():
        state = torch.load(path, map_location=device, weights_only=True)
        net = Classifier(data.shape[0], state["head.weight"].shape[0]).to(device)
        net.load_state_dict(state)
    else:
        net = train_classifier(data.scale(data.images), labels, steps=steps, device=device)
        torch.save(net.state_dict(), path)
    return net.eval()


def inception_features(path: str, data, device) -> callable:
    """A function images → 2048-d Inception features, from a local pt_inception state dict or TorchScript file."""
    pixels = inception_pixel_features(path, device)
    return lambda x: pixels((data.to_display(x.to(device)) * 255).round().to(torch.uint8))


def inception_pixel_features(path: str, device) -> callable:
    """A function 8-bit images [B, C, H, W] (uint8, C = 1 or 3) → 2048-d Inception-v3 pool features [B, 2048], from
    a local pt_inception-2015-12-05-*.pth (pytorch-fid) or TorchScript file (NVlabs' inception-2015-12-05.pt)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--inception-path {path} does not exist; scoresde downloads nothing. Give a local "
                                "pt_inception-2015-12-05-*.pth (pytorch-fid) or TorchScript Inception file, "
                                "or use --features classifier")
    from .inception import FIDInceptionV3
    try:  # pytorch-fid's pt_inception state dict, the standard file
        net, scripted = FIDInceptionV3.from_file(str(p), device), False
    except Exception:  # unpickling, missing or mis-shaped keys: try TorchScript next
        try:
            with warnings.catch_warnings():  # torch.jit.load is deprecated in torch 2.13; the user chose the format
                warnings.simplefilter("ignore", DeprecationWarning)
                net, scripted = torch.jit.load(str(p), map_location=device).eval(), True
        except Exception as e:
            raise ValueError(f"--inception-path {path} is neither TorchScript nor a pt_inception state dict: {e}") from e

    @torch.no_grad()
    def features(u):
        u = u.to(device)
        u = u.expand(-1, 3, -1, -1) if u.shape[1] == 1 else u
        if scripted:  # NVlabs' extractor takes uint8 images
            return net(u, return_features=True)
        return net.features(u.float() / 255)

    return features
