"""Gaussian blobs: one centre per class, at distance class_sep from the
origin in a random direction, and samples around it with noise of
standard deviation `noise` in every feature. With the defaults the classes
are well apart but overlap a little. Vector-shaped (n_features) or shaped
like an image (shape, e.g. [1, 28, 28]); balanced classes.

The data come from data_seed alone (numpy's PCG64 stream), so every peer
makes the same samples; the job's seed only decides the validation split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spirtd.errors import DatasetError
from spirtd.ml.datasets.base import TEST_FRACTION, VAL_FRACTION, DatasetDef, RawData
from spirtd.options import Option, int_tuple, integer, number

__all__ = ["SYNTHETIC", "input_shape"]

DEFAULT_FEATURES = 20
MAX_CLASSES = 1 << 16
MAX_FEATURES = 2**24
MAX_SHAPE_DIMS = 8
MAX_SAMPLES = 2**24
# Samples x features: the data are made in float64 in the daemon too (1 GiB).
MAX_ELEMENTS = 2**27


def input_shape(options: Mapping[str, Any]) -> tuple[int, ...]:
    """One sample's shape: `shape`, or (n_features,); not both."""
    if options["shape"] is not None and options["n_features"] is not None:
        raise DatasetError("dataset 'synthetic': give n_features or shape, not both")
    if options["shape"] is not None:
        shape = tuple(options["shape"])
    else:
        shape = (options["n_features"] or DEFAULT_FEATURES,)
    features = math.prod(shape)
    if features > MAX_FEATURES:
        raise DatasetError(f"dataset 'synthetic': shape {shape} has more than {MAX_FEATURES} features")
    n = options["n_samples"]
    if n * features > MAX_ELEMENTS:
        raise DatasetError(
            f"dataset 'synthetic': {n} samples of {features} features are {n * features} values; at most {MAX_ELEMENTS}"
        )
    return shape


def load(path: Path | None, options: Mapping[str, Any]) -> RawData:
    shape = input_shape(options)
    n, classes = options["n_samples"], options["n_classes"]
    if n < classes:
        raise DatasetError(f"dataset 'synthetic': n_samples ({n}) must be at least n_classes ({classes})")
    features = math.prod(shape)
    rng = np.random.default_rng(options["data_seed"])
    directions = rng.standard_normal((classes, features))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    centers = options["class_sep"] * directions
    y = rng.permutation(np.arange(n) % classes).astype(np.int64)
    x = centers[y] + options["noise"] * rng.standard_normal((n, features))
    return RawData(x.astype(np.float32).reshape(n, *shape), y, None, None, classes, None)


SYNTHETIC = DatasetDef(
    name="synthetic",
    summary="seeded Gaussian blobs, one per class; vector- or image-shaped",
    options={
        "n_samples": Option(1000, integer(minimum=2, maximum=MAX_SAMPLES), "samples in all splits"),
        "n_features": Option(None, integer(minimum=1, maximum=MAX_FEATURES), f"features of a vector sample ({DEFAULT_FEATURES})"),
        "shape": Option(None, int_tuple(minimum=1, maximum=MAX_FEATURES, min_len=1, max_len=MAX_SHAPE_DIMS), "a sample's shape instead, e.g. [1, 8, 8]"),
        "n_classes": Option(4, integer(minimum=2, maximum=MAX_CLASSES), "classes"),
        "noise": Option(1.0, number(0.0), "standard deviation of the noise in every feature"),
        "class_sep": Option(3.0, number(0.0), "distance of each class centre from the origin"),
        "data_seed": Option(0, integer(minimum=0, maximum=2**63 - 1), "seed of the data"),
        "val_fraction": VAL_FRACTION,
        "test_fraction": TEST_FRACTION,
    },  # fmt: skip
    load=load,
    check=input_shape,
)
