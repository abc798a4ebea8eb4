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
    batch, labels = data.train_batch(0, 8, seed=0)
    assert batch.shape == (8, 3, 32, 32) and batch.min() >= -1 and batch.max() <= 1
    assert torch.equal(batch, data.train_batch(0, 8, seed=0)[0]) and not torch.equal(batch, data.train_batch(1, 8, seed=0)[0])
    # each image keeps its own label: the pickles' labels 1–4 repeat per batch file, so find the image in x
    for img, label in zip(((batch + 1) / 2 * 255).round().to(torch.uint8), labels):
        match = (x == img).flatten(1).all(1).nonzero()[:, 0]
        assert len(match) >= 1 and int(label) in y[match].tolist()
    assert data.num_classes == 5 and data.eval_labels.tolist() == [1, 2, 3, 4]


def test_image_folder(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    for i, cls in enumerate(["cats", "dogs"]):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    x, y = load_image_folder(str(tmp_path))
    assert x.shape == (2, 3, 8, 8) and y.tolist() == [0, 1]


def test_an_image_folder_holds_out_images_it_does_not_train_on(tmp_path):
    """Each image has its own grey level, so an image is identified by its value: the held-out images are
    disjoint from the training images, together they are the folder, and they come from both class folders."""
    Image = pytest.importorskip("PIL.Image")
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
    for i in range(20):
        Image.fromarray(np.full((4, 4, 3), 10 * i, dtype=np.uint8)).save(tmp_path / "ab"[i % 2] / f"{i:02d}.png")
    data = build_data("image_folder", root=str(tmp_path), n_eval=6, centered=False)
    level = lambda u: set((u[:, 0, 0, 0].long() // 10).tolist())  # uint8 pixel values → image index
    held, train = level(data.eval_uint8), level(data.images)
    assert len(held) == 6 and len(train) == 14 and not held & train and held | train == set(range(20))
    assert set(data.eval_labels.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="config.data.n_eval=20 leaves no training images: .* holds 20"):
        build_data("image_folder", root=str(tmp_path), n_eval=20)


def test_missing_data_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST not found under .* place train-images-idx3-ubyte"):
        load_mnist(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found .* cifar-10-batches-py"):
        load_cifar10(str(tmp_path))


@pytest.mark.parametrize("name", sorted(TOY))
def test_toy_data_is_deterministic_per_step(name):
    data = build_data(name, n_eval=100)
    (a, ya), (b, yb) = data.train_batch(3, 64, seed=1), data.train_batch(3, 64, seed=1)
    assert a.shape == (64, 2) and torch.equal(a, b) and not torch.equal(a, data.train_batch(4, 64, seed=1)[0])
    assert data.eval_data.shape == (100, 2) and data.eval_data.abs().max() < 5
    if name == "swiss_roll":
        assert ya is None and data.eval_labels is None and data.num_classes == 0
    else:
        assert torch.equal(ya, yb) and ya.shape == (64,) and data.eval_labels.shape == (100,)
        assert set(data.eval_labels.tolist()) == set(range(data.num_classes))


def test_toy_labels_name_the_mixture_part():
    """eight Gaussians: the label is the Gaussian whose centre is nearest; checkerboard: the square; moons: the moon."""
    import math
    x, y = TOY["eight_gaussians"](2000, torch.Generator().manual_seed(0), return_labels=True)
    angle = torch.atan2(x[:, 1], x[:, 0]) % (2 * math.pi)
    assert torch.equal(((angle / (math.pi / 4)).round().long() % 8), y)
    x, y = TOY["checkerboard"](2000, torch.Generator().manual_seed(0), return_labels=True)
    col, row = torch.floor(x[:, 0]).long() + 2, (torch.floor(x[:, 1]).long() + 2) // 2
    assert torch.equal(2 * col + (1 - row), y)
    x, y = TOY["moons"](2000, torch.Generator().manual_seed(0), return_labels=True)
    assert ((x[y == 1, 1].mean() - x[y == 0, 1].mean()) > 0.5)
    with pytest.raises(ValueError, match="swiss_roll has no class labels"):
        TOY["swiss_roll"](4, return_labels=True)


def test_unknown_dataset():
    with pytest.raises(ValueError, match=r"config.data.dataset must be one of \[.*'checkerboard'"):
        build_data("imagenet")
