"""Datasets loaded the same way by every process, and their minibatches.

    spec = DatasetSpec("mnist", path="data/mnist", options={"val_fraction": 0.1})
    data = load_dataset(spec, seed=1)          # train/val/test arrays, fingerprint
    x, y = data.minibatch(batch_size=32, epoch=0, index=5)

Inputs are float32 (pixels scaled to [0, 1], or standardised), labels
int64. The validation split depends on (seed, val_fraction); a dataset
without a test split of its own (digits, synthetic) holds out
test_fraction with a fixed seed. Minibatch indices come from
minibatch_indices(n_train, batch_size, seed, epoch, index), the same in
every process (see batches.py). Adding a dataset is one module with its
loader and DatasetDef, and one line in DATASETS.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from spirtd.errors import DatasetError
from spirtd.ml.datasets import cifar, digits, mnist, synthetic
from spirtd.ml.datasets.base import DatasetDef, RawData
from spirtd.ml.datasets.batches import (
    TEST_SPLIT_SEED,
    TEST_SPLIT_STREAM,
    VAL_SPLIT_STREAM,
    batches_per_epoch,
    minibatch_indices,
    split_indices,
)
from spirtd.options import resolve_options, user_options

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetDef",
    "DatasetSpec",
    "batches_per_epoch",
    "load_dataset",
    "minibatch_indices",
]

DATASETS: Mapping[str, DatasetDef] = MappingProxyType(
    {
        "digits": digits.DIGITS,
        "synthetic": synthetic.SYNTHETIC,
        "mnist": mnist.MNIST,
        "fashion_mnist": mnist.FASHION_MNIST,
        "cifar10": cifar.CIFAR10,
    }
)

# Changes when what a fingerprint covers changes, so old cache keys miss.
FINGERPRINT_VERSION = 1
MAX_SEED = 2**64 - 1
# Standardising divides by the std; a constant channel keeps std 1.
MIN_STD = 1e-8


def _dataset_def(name: object) -> DatasetDef:
    found = DATASETS.get(name) if isinstance(name, str) else None
    if found is None:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return found


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset by registry name, the folder of its files (datasets read
    from files only), and options. Checked when made: an unknown name or
    option, a bad value, or a missing path is a DatasetError. `options`
    keeps what was given (canonical); `resolved()` adds the defaults."""

    name: str
    path: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        found = _dataset_def(self.name)
        owner = f"dataset {self.name!r}"
        given = user_options(owner, found.options, self.options, DatasetError)
        object.__setattr__(self, "options", MappingProxyType(given))
        if self.path is not None:
            if not isinstance(self.path, (str, os.PathLike)):
                raise DatasetError(f"{owner}: path must be a folder name, got {self.path!r}")
            object.__setattr__(self, "path", Path(self.path))
        if found.needs_path and self.path is None:
            raise DatasetError(
                f"{owner} needs a path: the folder with {', '.join(found.files)} "
                f"(spirtd data download {self.name} --dir DIR fetches them)"
            )
        if not found.needs_path and self.path is not None:
            raise DatasetError(f"{owner} is not read from files; it takes no path")
        if found.check is not None:
            found.check(self.resolved())

    def __hash__(self) -> int:
        return hash((self.name, self.path, tuple(sorted(self.options.items()))))

    def resolved(self) -> dict[str, Any]:
        """Every option, defaults filled in."""
        return resolve_options(f"dataset {self.name!r}", DATASETS[self.name].options, self.options,
                               DatasetError)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """{"name": ..., "path": ... (when set), **options}, JSON-ready."""
        out: dict[str, Any] = {"name": self.name}
        if self.path is not None:
            out["path"] = str(self.path)
        out.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()})
        return out

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> "DatasetSpec":
        """The inverse of to_dict."""
        if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
            raise DatasetError(f"a dataset must be a mapping with a name, got {value!r}")
        options = {k: v for k, v in value.items() if k not in ("name", "path")}
        return cls(value["name"], value.get("path"), options)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: read-only arrays, x float32 (n, *input_shape) and
    y int64 (n,). fingerprint (hex) covers the name, the resolved options,
    the seed and the data themselves, not the path: a cache key that is
    the same on every peer that has the same files."""

    spec: DatasetSpec
    seed: int
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    input_shape: tuple[int, ...]
    num_classes: int
    fingerprint: str

    @property
    def n_train(self) -> int:
        return len(self.train_y)

    def batches_per_epoch(self, batch_size: int) -> int:
        return batches_per_epoch(self.n_train, batch_size)

    def minibatch(self, batch_size: int, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of minibatch `index` of `epoch`, with this dataset's seed."""
        picked = minibatch_indices(self.n_train, batch_size, self.seed, epoch, index)
        return self.train_x[picked], self.train_y[picked]


def _fingerprint(spec: DatasetSpec, options: Mapping[str, Any], seed: int, raw: RawData) -> str:
    digest = hashlib.blake2b(digest_size=16)
    head = {"version": FINGERPRINT_VERSION, "name": spec.name, "options": options, "seed": seed}
    digest.update(json.dumps(head, sort_keys=True, default=list).encode())
    for array in (raw.train_x, raw.train_y, raw.test_x, raw.test_y):
        if array is None:
            digest.update(b"none")
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def _scale(x: np.ndarray, pixel_max: float | None) -> np.ndarray:
    if pixel_max is None:
        return np.asarray(x, dtype=np.float32)
    return (x.astype(np.float32) / np.float32(pixel_max)).astype(np.float32)


def _standardize(arrays: list[np.ndarray], train: np.ndarray) -> list[np.ndarray]:
    """Per channel (axis 1) to the training split's mean 0 and std 1."""
    axes = tuple(i for i in range(train.ndim) if i != 1)
    mean = train.mean(axis=axes, dtype=np.float64, keepdims=True)
    std = train.std(axis=axes, dtype=np.float64, keepdims=True)
    std[std < MIN_STD] = 1.0
    return [((a - mean) / std).astype(np.float32) for a in arrays]


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def load_dataset(spec: DatasetSpec, seed: int) -> Dataset:
    """Reads the dataset of `spec` and splits it for `seed`. Raises
    DatasetError, naming the file and what is wrong, for missing or
    malformed files, and when the splits would leave no training data."""
    if not isinstance(spec, DatasetSpec):
        raise DatasetError(f"spec must be a DatasetSpec, got {spec!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise DatasetError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    options = spec.resolved()
    raw = DATASETS[spec.name].load(spec.path, options)
    fingerprint = _fingerprint(spec, options, seed, raw)
    x, y = raw.train_x, raw.train_y
    if raw.test_x is None or raw.test_y is None:
        rest, test = split_indices(len(y), options["test_fraction"], TEST_SPLIT_SEED, TEST_SPLIT_STREAM)
        test_x, test_y, x, y = x[test], y[test], x[rest], y[rest]
    else:
        test_x, test_y = raw.test_x, raw.test_y
    train, val = split_indices(len(y), options["val_fraction"], seed, VAL_SPLIT_STREAM)
    if len(train) == 0:
        raise DatasetError(
            f"dataset {spec.name!r}: {len(raw.train_y)} samples leave none for training with "
            f"these fractions; lower val_fraction or test_fraction"
        )
    arrays = [_scale(a, raw.pixel_max) for a in (x[train], x[val], test_x)]
    if options.get("normalize") == "standard":
        arrays = _standardize(arrays, arrays[0])
    train_x, val_x, test_x = arrays
    return Dataset(
        spec=spec,
        seed=seed,
        train_x=_readonly(train_x),
        train_y=_readonly(y[train].astype(np.int64)),
        val_x=_readonly(val_x),
        val_y=_readonly(y[val].astype(np.int64)),
        test_x=_readonly(test_x),
        test_y=_readonly(test_y.astype(np.int64)),
        input_shape=tuple(int(d) for d in raw.train_x.shape[1:]),
        num_classes=raw.num_classes,
        fingerprint=fingerprint,
    )
