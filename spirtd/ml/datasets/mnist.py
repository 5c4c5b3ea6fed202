"""MNIST and Fashion-MNIST: the four IDX files of each (gzipped or not) in
the spec's path. 60,000 training and 10,000 test images of 28x28, 10
classes; files with fewer images (a subset) load too."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spirtd.errors import DatasetFileError
from spirtd.ml.datasets.base import (
    LOAD_TEST,
    NORMALIZE,
    VAL_FRACTION,
    DatasetDef,
    Loader,
    RawData,
)
from spirtd.ml.datasets.files import find_file, require_dir
from spirtd.ml.datasets.idx import read_idx

__all__ = ["FASHION_MNIST", "FILES", "MNIST"]

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
# How errors and the docs name them: each may be gzipped.
SHOWN = tuple(f"{name}(.gz)" for name in FILES)
SIDE = 28
NUM_CLASSES = 10
PIXEL_MAX = 255.0


def _read_pair(
    dataset: str, folder: Path, images_name: str, labels_name: str
) -> tuple[np.ndarray, np.ndarray]:
    images_path = find_file(dataset, folder, images_name, SHOWN)
    labels_path = find_file(dataset, folder, labels_name, SHOWN)
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[1:] != (SIDE, SIDE):
        raise DatasetFileError(
            f"{images_path}: images are {images.shape[1]}x{images.shape[2]}; "
            f"{dataset}'s are {SIDE}x{SIDE}"
        )
    if len(labels) != len(images):
        raise DatasetFileError(
            f"{labels_path}: holds {len(labels)} labels, but {images_path.name} holds "
            f"{len(images)} images"
        )
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise DatasetFileError(
            f"{labels_path}: label {labels[bad[0]]} at position {bad[0]} is not a class of "
            f"{dataset} (0 to {NUM_CLASSES - 1})"
        )
    return images.reshape(-1, 1, SIDE, SIDE), labels.astype(np.int64)


def _loader(dataset: str) -> Loader:
    def load(path: Path | None, options: Mapping[str, Any]) -> RawData:
        folder = require_dir(dataset, path, SHOWN)
        train_x, train_y = _read_pair(dataset, folder, TRAIN_IMAGES, TRAIN_LABELS)
        if options["load_test"]:
            test_x, test_y = _read_pair(dataset, folder, TEST_IMAGES, TEST_LABELS)
        else:
            test_x = np.zeros((0, 1, SIDE, SIDE), np.uint8)
            test_y = np.zeros(0, np.int64)
        return RawData(train_x, train_y, test_x, test_y, NUM_CLASSES, PIXEL_MAX)

    return load


_OPTIONS = {"val_fraction": VAL_FRACTION, "normalize": NORMALIZE, "load_test": LOAD_TEST}

MNIST = DatasetDef(
    name="mnist",
    summary="handwritten digits, 28x28 grayscale, 10 classes (60,000 train, 10,000 test)",
    options=_OPTIONS,
    load=_loader("mnist"),
    needs_path=True,
    files=SHOWN,
)
FASHION_MNIST = DatasetDef(
    name="fashion_mnist",
    summary="Zalando clothing images, 28x28 grayscale, 10 classes (60,000 train, 10,000 test)",
    options=_OPTIONS,
    load=_loader("fashion_mnist"),
    needs_path=True,
    files=SHOWN,
)
