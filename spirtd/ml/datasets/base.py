"""What every dataset shares: its registry entry, the arrays a loader
returns, and the options most of them take."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spirtd.options import Option, choice, flag, fraction

__all__ = [
    "LOAD_TEST",
    "NORMALIZE",
    "TEST_FRACTION",
    "VAL_FRACTION",
    "DatasetDef",
    "Loader",
    "RawData",
]

VAL_FRACTION = Option(0.1, fraction, "share of the training data held out for validation")
TEST_FRACTION = Option(
    0.2, fraction, "share held out for testing (datasets without a test split of their own)"
)
NORMALIZE = Option(
    "unit", choice("unit", "standard"),
    "unit: pixels scaled to [0, 1]; standard: then per channel to mean 0, std 1 "
    "(statistics of the training split)",
)  # fmt: skip
LOAD_TEST = Option(True, flag, "read the official test split (false: test arrays are empty)")


@dataclass(frozen=True)
class RawData:
    """What a loader read, before splitting and scaling.

    x arrays are (n, *input_shape): uint8 pixels (pixel_max is their full
    scale) or float32 features (pixel_max None). y arrays are int64 in
    [0, num_classes). test_x and test_y are None for a dataset without a
    test split of its own; load_dataset then holds out test_fraction.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray | None
    test_y: np.ndarray | None
    num_classes: int
    pixel_max: float | None


# (path or None, resolved options) -> RawData; raises DatasetError.
Loader = Callable[[Path | None, Mapping[str, Any]], RawData]


@dataclass(frozen=True)
class DatasetDef:
    """One dataset of the registry. needs_path: it is read from files in
    the spec's path (`files` names them, for errors and the docs). check,
    when set, applies rules across options (it raises DatasetError) when a
    spec is made."""

    name: str
    summary: str
    options: Mapping[str, Option]
    load: Loader = field(repr=False)
    needs_path: bool = False
    files: tuple[str, ...] = ()
    check: Callable[[Mapping[str, Any]], object] | None = field(default=None, repr=False)
