"""The native backend: spirt's own Redis module does the tensor work in place."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from redis.exceptions import ResponseError

from spirtd.aggregation import RuleCall, Statistic
from spirtd.aggregation.base import Statistics
from spirtd.errors import AggregationError, ConflictError, InvalidTensor, StoreError
from spirtd.optim import AdamConfig, SgdConfig
from spirtd.store.api import (
    DType,
    TensorMeta,
    TensorStore,
    as_storable,
    check_shape,
    error_text,
    from_bytes,
    translate,
)


def parse_meta(reply: list) -> TensorMeta:
    """[b"dtype", TYPE, b"shape", [dims], ...] -> TensorMeta"""
    return TensorMeta(DType(reply[1].decode()), tuple(int(d) for d in reply[3]))


# A statistic travels as its numbers, little-endian float64, row-major.
STATISTIC_DTYPE = np.dtype("<f8")


def aggregate_args(
    dst: str, call: RuleCall, inputs: Sequence[str], given: Statistics | None = None
) -> list[object]:
    """SPIRT.AGGREGATE's arguments for a validated rule call: each option the
    rule declares and the call has (defaults filled in), as its keyword and
    values; then each statistic given (checked), as GIVEN, its keyword and
    its numbers."""
    args: list[object] = ["SPIRT.AGGREGATE", dst, call.rule.name, "INPUTS", len(inputs), *inputs]
    for option, value in call.sent_options():
        args += [option.wire, *option.wire_values(value)]
    for stat in (s for s in Statistic if given and s in given):
        args += ["GIVEN", stat.wire, np.ascontiguousarray(given[stat], STATISTIC_DTYPE).tobytes()]
    return args


def statistic_args(stat: Statistic, inputs: Sequence[str]) -> list[object]:
    return ["SPIRT.STATISTIC", stat.wire, "INPUTS", len(inputs), *inputs]


def parse_statistic(blob: bytes, stat: Statistic, n: int) -> np.ndarray:
    """SPIRT.STATISTIC's reply as an array of the statistic's shape."""
    shape = stat.shape(n)
    want = int(np.prod(shape)) * STATISTIC_DTYPE.itemsize
    if not isinstance(blob, bytes) or len(blob) != want:
        got = len(blob) if isinstance(blob, bytes) else type(blob).__name__
        raise StoreError(f"SPIRT.STATISTIC replied {got} bytes for {stat.value} of {n} inputs; want {want}")
    return np.frombuffer(blob, STATISTIC_DTYPE).astype(np.float64).reshape(shape)


def sgd_args(param: str, grad: str, cfg: SgdConfig, buffer: str | None) -> list[object]:
    args: list[object] = ["SPIRT.SGD", param, grad, "LR", repr(cfg.lr)]
    if cfg.momentum > 0:
        if buffer is None:
            raise InvalidTensor("SGD with momentum needs a buffer key for its state")
        args += ["MOMENTUM", repr(cfg.momentum), "BUFFER", buffer]
        args += ["DAMPENING", repr(cfg.dampening)]
    if cfg.nesterov:
        args.append("NESTEROV")
    if cfg.weight_decay:
        args += ["WEIGHT_DECAY", repr(cfg.weight_decay)]
    if cfg.maximize:
        args.append("MAXIMIZE")
    return args


def adam_args(
    param: str, grad: str, cfg: AdamConfig, exp_avg: str, exp_avg_sq: str, step: str
) -> list[object]:
    args: list[object] = [
        "SPIRT.ADAM", param, grad, "LR", repr(cfg.lr),
        "EXP_AVG", exp_avg, "EXP_AVG_SQ", exp_avg_sq, "STEP", step,
        "BETA1", repr(cfg.betas[0]), "BETA2", repr(cfg.betas[1]), "EPS", repr(cfg.eps),
    ]  # fmt: skip
    if cfg.weight_decay:
        args += ["WEIGHT_DECAY", repr(cfg.weight_decay)]
    if cfg.decoupled:
        args.append("DECOUPLED")
    if cfg.maximize:
        args.append("MAXIMIZE")
    return args


def translate_work(exc: ResponseError, *, aggregation: bool) -> StoreError | AggregationError:
    """Errors of SPIRT.AGGREGATE / SGD / ADAM, mapped to the error tree."""
    text = error_text(exc)
    if "was modified while" in text:
        return ConflictError(text)
    base = translate(exc)
    if type(base) is not StoreError:
        return base
    if aggregation:
        return AggregationError(text)
    return InvalidTensor(text)


class NativeStore(TensorStore):
    backend = "native"

    async def set(self, key: str, array: np.ndarray) -> None:
        data, meta = as_storable(array)
        if meta.nbytes <= self.chunk_bytes:
            await self._call(
                "AI.TENSORSET", key, meta.dtype.value, *meta.shape, "BLOB", memoryview(data).cast("B"),
                key=key,
            )
            return
        view = memoryview(data).cast("B")
        async with self.writer(key, meta.dtype, meta.shape) as w:
            for off in range(0, meta.nbytes, self.chunk_bytes):
                await w.write(off, view[off : off + self.chunk_bytes])

    async def get(self, key: str) -> np.ndarray:
        meta = await self.meta(key)
        if meta.nbytes <= self.chunk_bytes:
            blob = await self._call("AI.TENSORGET", key, "BLOB", key=key)
            return from_bytes(blob, meta)
        buf = bytearray(meta.nbytes)
        for off in range(0, meta.nbytes, self.chunk_bytes):
            piece = await self.read_chunk(key, off, min(self.chunk_bytes, meta.nbytes - off))
            buf[off : off + len(piece)] = piece
        array = from_bytes(buf, meta)
        array.flags.writeable = False
        return array

    async def meta(self, key: str) -> TensorMeta:
        return parse_meta(await self._call("AI.TENSORGET", key, "META", key=key))

    async def create(self, key: str, dtype: DType, shape: Sequence[int]) -> None:
        await self._call("AI.TENSORSET", key, dtype.value, *check_shape(shape), key=key)

    async def write_chunk(self, key: str, offset: int, data: bytes | memoryview) -> None:
        await self._call("SPIRT.TENSORWRITE", key, int(offset), data, key=key)

    async def read_chunk(self, key: str, offset: int, length: int) -> bytes:
        return await self._call("SPIRT.TENSORREAD", key, int(offset), int(length), key=key)

    async def digest(self, key: str) -> str:
        return (await self._call("SPIRT.DIGEST", key, key=key)).decode()

    async def _aggregate(
        self, dst: str, call: RuleCall, inputs: list[str], given: Statistics
    ) -> tuple[int, ...] | None:
        reply = await self._work(aggregate_args(dst, call, inputs, given), aggregation=True)
        return tuple(int(i) for i in reply) if isinstance(reply, list) else None

    async def _statistic(self, stat: Statistic, inputs: list[str]) -> np.ndarray:
        reply = await self._work(statistic_args(stat, inputs), aggregation=True)
        return parse_statistic(reply, stat, len(inputs))

    async def sgd_step(
        self, param: str, grad: str, cfg: SgdConfig, *, buffer: str | None = None
    ) -> None:
        await self._work(sgd_args(param, grad, cfg, buffer), aggregation=False)

    async def adam_step(
        self, param: str, grad: str, cfg: AdamConfig, *, exp_avg: str, exp_avg_sq: str, step: str
    ) -> int:
        reply = await self._work(
            adam_args(param, grad, cfg, exp_avg, exp_avg_sq, step), aggregation=False
        )
        return int(reply)

    async def _work(self, args: list[object], *, aggregation: bool) -> object:
        try:
            return await self._call(*args)
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, ResponseError):
                raise translate_work(cause, aggregation=aggregation) from cause
            raise
