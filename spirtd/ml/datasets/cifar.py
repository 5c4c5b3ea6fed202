"""CIFAR-10, "python version" (Krizhevsky, 2009): the pickles data_batch_1
to data_batch_5 and test_batch, in the spec's path or in its
cifar-10-batches-py/ folder. Each is a dict with b"data", a uint8 array
(N, 3072) (1024 red, then green, then blue values of a 32x32 image,
row-major), and b"labels", N ints in 0..9. 50,000 training and 10,000
test images.

The pickles are read with an unpickler that builds only dicts, lists,
strings and numpy arrays, so a crafted file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spirtd.errors import DatasetFileError
from spirtd.ml.datasets.base import LOAD_TEST, NORMALIZE, VAL_FRACTION, DatasetDef, RawData
from spirtd.ml.datasets.files import require_dir

__all__ = ["CIFAR10", "FILES", "SUBDIR"]

SUBDIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
FILES = (*TRAIN_BATCHES, TEST_BATCH)
SHAPE = (3, 32, 32)
ROW_BYTES = 3 * 32 * 32
NUM_CLASSES = 10
PIXEL_MAX = 255.0


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """What numpy arrays need to unpickle, under the module names numpy 1
    and numpy 2 write (and Python 2's pickles of str, via _codecs)."""
    import codecs

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {("_codecs", "encode"): codecs.encode}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    ALLOWED = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


# What a malformed pickle can raise while it is read.
_UNPICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                    IndexError, KeyError, OverflowError)  # fmt: skip


def _item(batch: dict, key: str) -> Any:
    # Python 3 pickles have bytes keys; Python 2 ones read with latin1, str keys.
    return batch.get(key.encode(), batch.get(key))


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) of one batch file."""
    try:
        batch = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except OSError as exc:
        raise DatasetFileError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except _UNPICKLE_ERRORS as exc:
        raise DatasetFileError(f"{path}: not a CIFAR-10 batch pickle ({exc})") from None
    if not isinstance(batch, dict) or _item(batch, "data") is None or _item(batch, "labels") is None:
        keys = ", ".join(sorted(map(repr, batch))) if isinstance(batch, dict) else type(batch).__name__
        raise DatasetFileError(
            f"{path}: a CIFAR-10 batch is a dict with keys b'data' and b'labels'; this one has {keys}"
        )
    data, labels = _item(batch, "data"), _item(batch, "labels")
    is_array = isinstance(data, np.ndarray)
    if not is_array or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_BYTES:
        what = f"{data.dtype} array of shape {data.shape}" if is_array else type(data).__name__
        raise DatasetFileError(
            f"{path}: b'data' must be a uint8 array of shape (N, {ROW_BYTES}); it is a {what}"
        )
    try:
        labels = np.asarray(labels)
    except (ValueError, TypeError):
        labels = np.asarray([None])
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise DatasetFileError(f"{path}: b'labels' must be a list of integers")
    if len(labels) != len(data):
        raise DatasetFileError(f"{path}: holds {len(labels)} labels for {len(data)} images")
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size:
        raise DatasetFileError(
            f"{path}: label {labels[bad[0]]} at position {bad[0]} is not a class of cifar10 "
            f"(0 to {NUM_CLASSES - 1})"
        )
    return data.reshape(-1, *SHAPE), labels.astype(np.int64)


def _folder(path: Path | None) -> Path:
    folder = require_dir("cifar10", path, FILES)
    return folder / SUBDIR if (folder / SUBDIR).is_dir() else folder


def _read_all(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DatasetFileError(
            f"dataset 'cifar10': {folder} has no {', '.join(missing)}; it should hold "
            f"{', '.join(FILES)} (or a {SUBDIR}/ folder with them; spirtd data download "
            f"cifar10 --dir DIR fetches them)"
        )
    parts = [read_batch(folder / name) for name in names]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def load(path: Path | None, options: Mapping[str, Any]) -> RawData:
    folder = _folder(path)
    train_x, train_y = _read_all(folder, TRAIN_BATCHES)
    if options["load_test"]:
        test_x, test_y = _read_all(folder, (TEST_BATCH,))
    else:
        test_x, test_y = np.zeros((0, *SHAPE), np.uint8), np.zeros(0, np.int64)
    return RawData(train_x, train_y, test_x, test_y, NUM_CLASSES, PIXEL_MAX)


CIFAR10 = DatasetDef(
    name="cifar10",
    summary="small colour photos, 3x32x32, 10 classes (50,000 train, 10,000 test)",
    options={"val_fraction": VAL_FRACTION, "normalize": NORMALIZE, "load_test": LOAD_TEST},
    load=load,
    needs_path=True,
    files=FILES,
)
