"""A small stand-in for CIFAR-10 in its local layout (cifar-10-batches-py/ pickles of uint8 rows), for tests."""
import pickle
from pathlib import Path

import numpy as np


def write_cifar10(root, per_file: int = 8, seed: int = 0) -> Path:
    """Five training batches and a test batch of per_file random 32×32 RGB images each under root; returns root."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (per_file, 3072), dtype=np.uint8),
                         "labels": [i % 10 for i in range(per_file)]}, f)
    return Path(root)
