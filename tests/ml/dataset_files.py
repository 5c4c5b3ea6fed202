"""Small dataset files in the exact standard formats, written here
independently of the loaders, so that tests never download anything."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000 08 ndim, big-endian
    uint32 sizes, data row-major."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_file(path: Path, data: bytes, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True,
                seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """The four MNIST files with random 28x28 images and labels 0..9;
    returns {"train": (images, labels), "test": ...}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        images_name, labels_name = MNIST_NAMES[split]
        write_file(folder / images_name, idx_bytes(images), gz)
        write_file(folder / labels_name, idx_bytes(labels), gz)
        written[split] = (images, labels)
    return written


def cifar_batch(n: int, rng: np.random.Generator) -> dict[bytes, object]:
    return {
        b"batch_label": b"generated batch",
        b"labels": [int(v) for v in rng.integers(0, 10, size=n)],
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def write_cifar(folder: Path, per_batch: int = 4, n_test: int = 5, subdir: bool = True,
                seed: int = 0, protocol: int = 2) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """data_batch_1..5 and test_batch pickles (dicts with b"data" uint8
    (N, 3072) and b"labels"), in folder/cifar-10-batches-py/ or folder."""
    target = folder / "cifar-10-batches-py" if subdir else folder
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train = []
    for name in CIFAR_TRAIN:
        batch = cifar_batch(per_batch, rng)
        (target / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        train.append(batch)
    test = cifar_batch(n_test, rng)
    (target / "test_batch").write_bytes(pickle.dumps(test, protocol=protocol))
    (target / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}))

    def arrays(batches: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
        return x, np.concatenate([np.asarray(b[b"labels"], np.int64) for b in batches])

    return {"train": arrays(train), "test": arrays([test])}
