"""scikit-learn's bundled handwritten digits (load_digits; UCI "Optical
Recognition of Handwritten Digits", test part): 1,797 images of 8x8 with
values 0..16, 10 classes. Real data that needs no download; it has no test
split of its own, so test_fraction of it is held out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spirtd.errors import DatasetError
from spirtd.ml.datasets.base import NORMALIZE, TEST_FRACTION, VAL_FRACTION, DatasetDef, RawData

__all__ = ["DIGITS"]

SIDE = 8
NUM_CLASSES = 10
PIXEL_MAX = 16.0


def load(path: Path | None, options: Mapping[str, Any]) -> RawData:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError(
            "dataset 'digits' needs scikit-learn, which is not installed (pip install scikit-learn)"
        ) from None
    bunch = load_digits()
    images = np.asarray(bunch.images)
    if images.min() < 0 or images.max() > PIXEL_MAX or not np.all(images == np.round(images)):
        raise DatasetError("dataset 'digits': scikit-learn's digits are not integers in 0..16")
    x = images.astype(np.uint8).reshape(-1, 1, SIDE, SIDE)
    return RawData(x, np.asarray(bunch.target, dtype=np.int64), None, None, NUM_CLASSES, PIXEL_MAX)


DIGITS = DatasetDef(
    name="digits",
    summary="scikit-learn's handwritten digits, 1x8x8, 10 classes (1,797 samples, no download)",
    options={"val_fraction": VAL_FRACTION, "test_fraction": TEST_FRACTION, "normalize": NORMALIZE},
    load=load,
)
