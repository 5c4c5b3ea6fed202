"""A TensorStore's own arguments are checked before it touches Redis."""

from __future__ import annotations

import pytest

from spirtd.errors import ConfigError
from spirtd.store.plain import PlainStore


@pytest.mark.parametrize("chunk_bytes", [0, -1, 1.5, True])
def test_store_refuses_bad_chunk_bytes(chunk_bytes):
    with pytest.raises(ConfigError, match=f"chunk_bytes must be an integer >= 1, not {chunk_bytes!r}"):
        PlainStore(None, chunk_bytes=chunk_bytes)
