"""Training and held-out data. Every batch is a pure function of (seed, step), so resumed runs repeat exactly.

A data set has `shape` (per sample), `is_image`, `num_classes` (0: no labels), held-out `eval_data` and
`eval_labels` (None without labels), and `train_batch(step, batch_size, seed) → (x, y)`, y None without labels.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from .._utils import ArgumentTypeError, check_bool, check_choice, check_positive_int, describe
from .images import IMAGE_DATASETS
from .toy import NUM_CLASSES as TOY_CLASSES, TOY

DATASETS = sorted(TOY) + sorted(IMAGE_DATASETS)


def stream_generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator seeded from (seed, *keys) through numpy's SeedSequence: independent streams."""
    for i, key in enumerate((seed, *keys)):
        check_positive_int(key, "seed" if i == 0 else "step", minimum=0)
    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


class ToyData:
    """A 2-D toy distribution: each step draws a fresh batch."""

    is_image = False
    eval_uint8 = None  # real-valued data: no 8-bit values to dequantise
    num_train = None  # training samples: drawn afresh, without end

    def __init__(self, name: str, n_eval: int = 2000, seed: int = 0):
        check_choice(name, "name", TOY)
        self.name, self.sample_fn, self.shape = name, TOY[name], (2,)
        self.num_classes = TOY_CLASSES.get(name, 0)
        self.eval_data, self.eval_labels = self._draw(n_eval, stream_generator(seed, 1 << 20))  # never overlaps training

    def _draw(self, n, generator):
        if self.num_classes:
            return self.sample_fn(n, generator, return_labels=True)
        return self.sample_fn(n, generator), None

    def train_batch(self, step: int, batch_size: int, seed: int):
        """(x [B, 2], labels [B] or None)."""
        check_positive_int(batch_size, "batch_size")
        return self._draw(batch_size, stream_generator(seed, step))

    def to_display(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ImageData:
    """uint8 images scaled to [−1, 1] (or [0, 1]); epochs are seeded permutations, batches drop the remainder."""

    is_image = True

    def __init__(self, images: torch.Tensor, eval_images: torch.Tensor, centered: bool = True, random_flip: bool = False,
                 labels: torch.Tensor | None = None, eval_labels: torch.Tensor | None = None):
        for name, u in (("images", images), ("eval_images", eval_images)):
            if not isinstance(u, torch.Tensor) or u.dtype != torch.uint8 or u.ndim != 4 or len(u) == 0:
                raise ValueError(f"{name} must be a non-empty uint8 tensor [N, C, H, W], got {describe(u)}")
        if (labels is None) != (eval_labels is None):
            raise ValueError("give labels and eval_labels together, or neither")
        for name, y, u in (("labels", labels, images), ("eval_labels", eval_labels, eval_images)):
            if y is not None and (not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != (len(u),)
                                  or bool((y < 0).any())):
                raise ValueError(f"{name} must be an int64 tensor [{len(u)}] of labels >= 0, got {describe(y)}")
        self.labels, self.eval_labels = labels, eval_labels
        self.num_classes = 0 if labels is None else int(max(labels.max(), eval_labels.max())) + 1
        if eval_images.shape[1:] != images.shape[1:]:
            raise ValueError(f"eval_images must have the images' shape {tuple(images.shape[1:])} per sample, "
                             f"got {tuple(eval_images.shape[1:])}")
        check_bool(centered, "centered")
        check_bool(random_flip, "random_flip")
        self.images, self.centered, self.random_flip = images, centered, random_flip
        self.shape = tuple(images.shape[1:])
        self.eval_uint8 = eval_images  # the held-out pixel values 0…255, for dequantised bits/dim
        self.eval_data = self.scale(eval_images)

    @property
    def num_train(self) -> int:
        """The number of training images."""
        return len(self.images)

    @property
    def data_range(self) -> tuple[float, float]:
        """The interval the model's pixel values span: [−1, 1] (centered) or [0, 1]."""
        return (-1.0, 1.0) if self.centered else (0.0, 1.0)

    def scale(self, u: torch.Tensor) -> torch.Tensor:
        x = u.float() / 255.0
        return 2 * x - 1 if self.centered else x

    def to_display(self, x: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] for saving pictures."""
        return ((x + 1) / 2 if self.centered else x).clamp(0, 1)

    def train_batch(self, step: int, batch_size: int, seed: int):
        """(x [B, C, H, W], labels [B] or None)."""
        check_positive_int(batch_size, "batch_size")
        check_positive_int(step, "step", minimum=0)
        per_epoch = len(self.images) // batch_size
        if per_epoch == 0:
            raise ValueError(f"training.batch_size={batch_size} exceeds the data set's {len(self.images)} images")
        epoch, k = divmod(step, per_epoch)
        perm = torch.randperm(len(self.images), generator=stream_generator(seed, 1 << 21, epoch))
        idx = perm[k * batch_size:(k + 1) * batch_size]
        x = self.scale(self.images[idx])
        if self.random_flip:
            flip = torch.rand(batch_size, generator=stream_generator(seed, 1 << 22, step)) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x, (None if self.labels is None else self.labels[idx])


def split_held_out(images, labels, n_eval: int, root):
    """(train, train labels, held-out, held-out labels): n_eval images held out by a fixed permutation (seed 0), so
    the held-out set mixes every class folder and never overlaps the training images."""
    if n_eval >= len(images):
        raise ValueError(f"config.data.n_eval={n_eval} leaves no training images: {root} holds {len(images)}; "
                         f"set config.data.n_eval below {len(images)}")
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    held, kept = perm[:n_eval], perm[n_eval:]
    return images[kept], labels[kept], images[held], labels[held]


def build_data(dataset: str, root: str = "data", image_size: int = 0, centered: bool = True,
               random_flip: bool = False, n_eval: int = 2000, seed: int = 0):
    """A ToyData or ImageData by name (see DATASETS)."""
    check_choice(dataset, "config.data.dataset", DATASETS)
    if not isinstance(root, (str, os.PathLike)):
        raise ArgumentTypeError(f"root must be a folder path, got {describe(root)}")
    check_positive_int(image_size, "image_size", minimum=0)
    check_bool(centered, "centered")
    check_bool(random_flip, "random_flip")
    check_positive_int(n_eval, "n_eval")
    check_positive_int(seed, "seed", minimum=0)
    if dataset in TOY:
        return ToyData(dataset, n_eval=n_eval, seed=seed)
    train, labels = IMAGE_DATASETS[dataset](root, "train")
    if dataset == "image_folder":  # one folder: hold out n_eval images drawn with a fixed seed, train on the rest
        train, labels, test, test_labels = split_held_out(train, labels, n_eval, root)
    else:
        test, test_labels = IMAGE_DATASETS[dataset](root, "test")
    if image_size and train.shape[-1] != image_size:
        raise ValueError(f"config.data.image_size={image_size} but {dataset} images are {train.shape[-1]}x{train.shape[-2]}; "
                         f"set config.data.image_size={train.shape[-1]} (scoresde does not resize)")
    return ImageData(train, test[:n_eval], centered=centered, random_flip=random_flip, labels=labels.long(),
                     eval_labels=test_labels[:n_eval].long())
