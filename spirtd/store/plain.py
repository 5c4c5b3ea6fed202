"""The plain backend: a Redis with no module. Tensors are strings (a small
header, then the raw bytes); aggregation and optimizer steps pull the data
into this process and compute with numpy. This is the baseline that
in-database work is measured against, and the fallback for any Redis.

String layout: b"SPT\\x01", dtype code (1 byte, DType order), ndim (1 byte),
2 zero bytes, ndim little-endian uint64 dims, then the data.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Sequence

import numpy as np
from redis.exceptions import WatchError

from spirtd.aggregation import RuleCall, Statistic, aggregate, statistic
from spirtd.aggregation.base import Statistics
from spirtd.errors import ConflictError, InvalidTensor, TensorNotFound, WrongType
from spirtd.optim import AdamConfig, SgdConfig, adam_step, sgd_step
from spirtd.store.api import MAX_DIMS, DType, TensorMeta, TensorStore, as_storable, check_shape

MAGIC = b"SPT\x01"
_DTYPES = list(DType)
_FIXED = struct.Struct("<4sBBxx")
MAX_HEADER = _FIXED.size + 8 * MAX_DIMS


def encode_header(meta: TensorMeta) -> bytes:
    code = _DTYPES.index(meta.dtype)
    return _FIXED.pack(MAGIC, code, len(meta.shape)) + struct.pack(
        f"<{len(meta.shape)}Q", *meta.shape
    )


def decode_header(raw: bytes, key: str) -> tuple[TensorMeta, int]:
    """(meta, header length) of a stored tensor string."""
    if len(raw) < _FIXED.size:
        raise WrongType(f"key {key!r} holds a string that is not a spirt tensor")
    magic, code, ndim = _FIXED.unpack_from(raw)
    end = _FIXED.size + 8 * ndim
    if magic != MAGIC or code >= len(_DTYPES) or not 1 <= ndim <= MAX_DIMS or len(raw) < end:
        raise WrongType(f"key {key!r} holds a string that is not a spirt tensor")
    shape = struct.unpack_from(f"<{ndim}Q", raw, _FIXED.size)
    return TensorMeta(_DTYPES[code], tuple(shape)), end


def decode(raw: bytes | None, key: str) -> np.ndarray:
    if raw is None:
        raise TensorNotFound(f"tensor key {key!r} is empty")
    meta, start = decode_header(raw, key)
    if len(raw) - start != meta.nbytes:
        raise WrongType(f"key {key!r} holds a truncated tensor")
    return np.frombuffer(raw, dtype=meta.dtype.numpy, offset=start).reshape(meta.shape)


class PlainStore(TensorStore):
    backend = "plain"

    async def set(self, key: str, array: np.ndarray) -> None:
        data, meta = as_storable(array)
        view = memoryview(data).cast("B")
        if meta.nbytes <= self.chunk_bytes:
            await self._call("SET", key, encode_header(meta) + view, key=key)
            return
        async with self.writer(key, meta.dtype, meta.shape) as w:
            for off in range(0, meta.nbytes, self.chunk_bytes):
                await w.write(off, view[off : off + self.chunk_bytes])

    async def get(self, key: str) -> np.ndarray:
        return decode(await self._call("GET", key, key=key), key)

    async def meta(self, key: str) -> TensorMeta:
        return (await self._header(key))[0]

    async def _header(self, key: str) -> tuple[TensorMeta, int]:
        raw = await self._call("GETRANGE", key, 0, MAX_HEADER - 1, key=key)
        if not raw and not await self.exists(key):
            raise TensorNotFound(f"tensor key {key!r} is empty")
        return decode_header(raw, key)

    async def create(self, key: str, dtype: DType, shape: Sequence[int]) -> None:
        meta = TensorMeta(dtype, check_shape(shape))
        header = encode_header(meta)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(key, header)
            # SETRANGE past the end pads with zero bytes: zeros without sending them.
            pipe.setrange(key, len(header) + meta.nbytes - 1, b"\x00")
            await pipe.execute()

    async def write_chunk(self, key: str, offset: int, data: bytes | memoryview) -> None:
        meta, start = await self._header(key)
        if offset < 0 or offset + len(data) > meta.nbytes:
            raise InvalidTensor(
                f"{len(data)} bytes at offset {offset} do not fit in a tensor of {meta.nbytes} bytes"
            )
        await self._call("SETRANGE", key, start + offset, data, key=key)

    async def read_chunk(self, key: str, offset: int, length: int) -> bytes:
        meta, start = await self._header(key)
        if offset < 0 or length < 0 or offset + length > meta.nbytes:
            raise InvalidTensor(
                f"{length} bytes at offset {offset} do not fit in a tensor of {meta.nbytes} bytes"
            )
        if length == 0:
            return b""
        return await self._call("GETRANGE", key, start + offset, start + offset + length - 1)

    async def digest(self, key: str) -> str:
        return hashlib.sha256(memoryview(await self.get(key)).cast("B")).hexdigest()

    async def _load(self, inputs: list[str]) -> list[np.ndarray]:
        raws = await self._call("MGET", *inputs)
        return [decode(raw, key) for raw, key in zip(raws, inputs)]

    async def _aggregate(
        self, dst: str, call: RuleCall, inputs: list[str], given: Statistics
    ) -> tuple[int, ...] | None:
        arrays = await self._load(inputs)
        out = aggregate(call.rule.name, arrays, names=inputs, given=given, **call.user_options)
        await self.set(dst, out.value)
        return out.selected

    async def _statistic(self, stat: Statistic, inputs: list[str]) -> np.ndarray:
        return statistic(stat, await self._load(inputs), names=inputs)

    async def _load_for_update(self, pipe, keys: Sequence[str | None]) -> list[np.ndarray | None]:
        present = [k for k in keys if k is not None]
        await pipe.watch(*present)
        raws = dict(zip(present, await pipe.mget(*present)))
        return [None if k is None or raws[k] is None else decode(raws[k], k) for k in keys]

    async def _commit_update(self, pipe, updates: dict[str, np.ndarray]) -> None:
        pipe.multi()
        for key, value in updates.items():
            data, meta = as_storable(value)
            pipe.set(key, encode_header(meta) + memoryview(data).cast("B"))
        try:
            await pipe.execute()
        except WatchError as exc:
            raise ConflictError(
                f"{', '.join(updates)} changed while the step ran; nothing was written"
            ) from exc

    async def sgd_step(
        self, param: str, grad: str, cfg: SgdConfig, *, buffer: str | None = None
    ) -> None:
        if cfg.momentum > 0 and buffer is None:
            raise InvalidTensor("SGD with momentum needs a buffer key for its state")
        async with self.client.pipeline(transaction=True) as pipe:
            p, g, b = await self._load_for_update(pipe, [param, grad, buffer])
            if p is None or g is None:
                raise TensorNotFound(f"tensor key {param if p is None else grad!r} is empty")
            new_p, new_b = sgd_step(p, g, b, cfg)
            updates = {param: new_p}
            if new_b is not None and buffer is not None:
                updates[buffer] = new_b
            await self._commit_update(pipe, updates)

    async def adam_step(
        self, param: str, grad: str, cfg: AdamConfig, *, exp_avg: str, exp_avg_sq: str, step: str
    ) -> int:
        async with self.client.pipeline(transaction=True) as pipe:
            p, g, m, v, s = await self._load_for_update(pipe, [param, grad, exp_avg, exp_avg_sq, step])
            if p is None or g is None:
                raise TensorNotFound(f"tensor key {param if p is None else grad!r} is empty")
            taken = 0 if s is None else int(s.reshape(-1)[0])
            new_p, new_m, new_v, new_step = adam_step(p, g, m, v, taken, cfg)
            await self._commit_update(
                pipe,
                {
                    param: new_p,
                    exp_avg: new_m,
                    exp_avg_sq: new_v,
                    step: np.array([new_step], dtype=np.int64),
                },
            )
            return new_step
