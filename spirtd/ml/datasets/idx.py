"""The IDX format of the MNIST files (LeCun et al.): a 4-byte magic number
(two zero bytes, a type code, the number of dimensions), one big-endian
uint32 per dimension, then the data, row-major. MNIST uses type 0x08
(unsigned byte): images have 3 dimensions (magic 0x00000803 = 2051),
labels 1 (magic 0x00000801 = 2049)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from spirtd.errors import DatasetFileError
from spirtd.ml.datasets.files import read_maybe_gzipped

__all__ = ["UBYTE", "idx_magic", "read_idx"]

UBYTE = 0x08
HEADER_BYTES = 4
DIM_BYTES = 4


def idx_magic(ndim: int, type_code: int = UBYTE) -> int:
    return (type_code << 8) | ndim


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The unsigned-byte array of `ndim` dimensions in an IDX file (gzipped
    or not). DatasetError, naming the file, for a wrong magic number, a
    header or data shorter than the header says, or bytes left over."""
    data = read_maybe_gzipped(path)
    expected = idx_magic(ndim)
    if len(data) < HEADER_BYTES:
        raise DatasetFileError(f"{path}: truncated: {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:HEADER_BYTES], "big")
    if magic != expected:
        what = "images" if ndim == 3 else "labels" if ndim == 1 else f"{ndim}-d data"
        raise DatasetFileError(
            f"{path}: bad IDX magic number 0x{magic:08x}; expected 0x{expected:08x} "
            f"(unsigned bytes, {ndim} dimensions: {what})"
        )
    header = HEADER_BYTES + DIM_BYTES * ndim
    if len(data) < header:
        raise DatasetFileError(
            f"{path}: truncated: the IDX header needs {header} bytes, the file has {len(data)}"
        )
    dims = tuple(
        int.from_bytes(data[HEADER_BYTES + DIM_BYTES * i : HEADER_BYTES + DIM_BYTES * (i + 1)], "big")
        for i in range(ndim)
    )
    size = math.prod(dims)
    body = len(data) - header
    if body < size:
        raise DatasetFileError(
            f"{path}: truncated: the header says {'x'.join(map(str, dims))} = {size} bytes of "
            f"data, the file holds {body}"
        )
    if body > size:
        raise DatasetFileError(
            f"{path}: {body - size} bytes more than its header ({'x'.join(map(str, dims))}) says"
        )
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(dims)
