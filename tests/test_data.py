import pickle

import numpy as np
import pytest
import torch

from scoresde.data import TOY, build_data
from scoresde.data.images import load_cifar10, load_image_folder, load_mnist


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_idx_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(5))
    x, y = load_mnist(str(tmp_path))
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.uint8 and torch.equal(x[:, 0], torch.from_numpy(images).byte())
    assert y.tolist() == [0, 1, 2, 3, 4]


def test_cifar10_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [1, 2, 3, 4]}, f)
    x, y = load_cifar10(str(tmp_path))
    assert x.shape == (20, 3, 32, 32) and y.shape == (20,)
    data = build_data("cifar10", root=str(tmp_path), image_size=32, n_eval=4)
    batch = data.train_batch(0, 8, seed=0)
    assert batch.shape == (8, 3, 32, 32) and batch.min() >= -1 and batch.max() <= 1
    assert torch.equal(batch, data.train_batch(0, 8, seed=0)) and not torch.equal(batch, data.train_batch(1, 8, seed=0))


def test_image_folder(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    for i, cls in enumerate(["cats", "dogs"]):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    x, y = load_image_folder(str(tmp_path))
    assert x.shape == (2, 3, 8, 8) and y.tolist() == [0, 1]


def test_missing_data_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST not found under .* place train-images-idx3-ubyte"):
        load_mnist(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found .* cifar-10-batches-py"):
        load_cifar10(str(tmp_path))


@pytest.mark.parametrize("name", sorted(TOY))
def test_toy_data_is_deterministic_per_step(name):
    data = build_data(name, n_eval=100)
    a, b = data.train_batch(3, 64, seed=1), data.train_batch(3, 64, seed=1)
    assert a.shape == (64, 2) and torch.equal(a, b) and not torch.equal(a, data.train_batch(4, 64, seed=1))
    assert data.eval_data.shape == (100, 2) and data.eval_data.abs().max() < 5


def test_unknown_dataset():
    with pytest.raises(ValueError, match=r"config.data.dataset must be one of \[.*'checkerboard'"):
        build_data("imagenet")
