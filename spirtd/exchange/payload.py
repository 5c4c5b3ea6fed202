"""A contribution's payload: float32 in the store, the job's wire dtype on
the way (HALF: rounded to float16), cut into chunks whose byte offsets map
back to the float32 tensor's."""

from __future__ import annotations

import numpy as np

from spirtd.exchange.formulas import FLOAT32_BYTES
from spirtd.exchange.streams import WIRE_DTYPES
from spirtd.exchange.transport import Chunks


def to_wire(data: bytes, dtype: str) -> bytes:
    """float32 bytes as they travel (HALF: rounded to float16)."""
    return data if dtype == "FLOAT" else np.frombuffer(data, "<f4").astype("<f2").tobytes()


def from_wire(data: bytes, dtype: str) -> bytes:
    """Bytes as they travelled, as the float32 the store aggregates in."""
    return data if dtype == "FLOAT" else np.frombuffer(data, "<f2").astype("<f4").tobytes()


def f32_offset(offset: int, dtype: str) -> int:
    """The float32 tensor's byte offset of a wire offset."""
    return offset * FLOAT32_BYTES // WIRE_DTYPES[dtype]


async def chunks(data: bytes, size: int) -> Chunks:
    """Views of data (read-only bytes): the transport copies each once, into its message."""
    view = memoryview(data)
    for offset in range(0, len(data), size):
        yield offset, view[offset : offset + size]
