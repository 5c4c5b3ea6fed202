"""The tensor store interface every backend implements.

A TensorStore holds named tensors in a Redis and does tensor work there:
aggregation of many tensors into one, optimizer steps, digests. Backends
differ in where the work happens (see spirtd.store.connect for how one is
chosen): inside Redis with spirt's module ("native") or a real RedisAI
("redisai"), or pulled into this process with numpy ("plain", the baseline).

Arrays returned by get() are read-only views of the bytes received; copy
them before changing them.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import secrets
from dataclasses import dataclass
from typing import AsyncIterator, Callable, ClassVar, Iterator, Mapping, Sequence

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from spirtd.aggregation import RuleCall, Statistic, check_given, validate_call
from spirtd.aggregation.base import Statistics
from spirtd.aggregation.statistics import check_count, find_statistic
from spirtd.clock import Clock
from spirtd.errors import (
    ConfigError,
    InvalidTensor,
    StoreError,
    StoreFull,
    StoreRestarted,
    StoreUnavailable,
    TensorNotFound,
    WrongType,
)
from spirtd.optim import AdamConfig, SgdConfig

# Tensors bigger than this travel in pieces: one Redis argument is limited
# (proto-max-bulk-len, 512 MB by default), and smaller pieces keep the
# store's event loop responsive while a tensor streams in.
DEFAULT_CHUNK_BYTES = 64 << 20
MAX_DIMS = 32
STAGING_SUFFIX = ":spirt-staging:"
# Written and deleted by flush_to_disk; reserved.
DURABILITY_BARRIER_KEY = "spirt:durability-barrier"
# Told the name of each command the store sent (AI.TENSORSET, SPIRT.AGGREGATE,
# EVAL, ...) and the seconds it took, replied or failed.
CommandObserver = Callable[[str, float], None]
_SCAN_COUNT = 512
_DELETE_BATCH = 512
# write_fields_if_run: the server's run id changes at every restart.
_RESTARTED_REPLY = "SPIRT_RESTARTED"
_WRITE_IF_RUN = """
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if run ~= ARGV[1] then
  return redis.error_reply('SPIRT_RESTARTED the store restarted')
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 'OK'
"""


class DType(enum.Enum):
    """RedisAI's tensor data types, in the order of their numeric codes."""

    FLOAT = "FLOAT"
    DOUBLE = "DOUBLE"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    BOOL = "BOOL"

    @property
    def numpy(self) -> np.dtype:
        return _TO_NUMPY[self]

    @classmethod
    def of(cls, dtype: np.dtype | type) -> "DType":
        found = _FROM_NUMPY.get(np.dtype(dtype).newbyteorder("="))
        if found is None:
            names = ", ".join(str(d) for d in _FROM_NUMPY)
            raise InvalidTensor(f"dtype {np.dtype(dtype)} cannot be stored; use one of {names}")
        return found


_TO_NUMPY = {
    DType.FLOAT: np.dtype("<f4"),
    DType.DOUBLE: np.dtype("<f8"),
    DType.INT8: np.dtype("i1"),
    DType.INT16: np.dtype("<i2"),
    DType.INT32: np.dtype("<i4"),
    DType.INT64: np.dtype("<i8"),
    DType.UINT8: np.dtype("u1"),
    DType.UINT16: np.dtype("<u2"),
    DType.BOOL: np.dtype("?"),
}
_FROM_NUMPY = {v.newbyteorder("="): k for k, v in _TO_NUMPY.items()}


@dataclass(frozen=True)
class TensorMeta:
    dtype: DType
    shape: tuple[int, ...]

    @property
    def nelem(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.nelem * self.dtype.numpy.itemsize


def check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    if not shape:
        raise InvalidTensor("a tensor needs at least one dimension (reshape scalars to (1,))")
    if len(shape) > MAX_DIMS:
        raise InvalidTensor(f"a tensor has at most {MAX_DIMS} dimensions, got {len(shape)}")
    if any(d <= 0 for d in shape):
        raise InvalidTensor(f"every dimension must be > 0, got shape {shape}")
    return shape


def as_storable(array: np.ndarray) -> tuple[np.ndarray, TensorMeta]:
    """The array as little-endian C-ordered bytes, with its metadata."""
    array = np.asarray(array)
    dtype = DType.of(array.dtype)
    shape = check_shape(array.shape)
    return np.ascontiguousarray(array, dtype=dtype.numpy), TensorMeta(dtype, shape)


def from_bytes(data: bytes | memoryview, meta: TensorMeta) -> np.ndarray:
    if len(data) != meta.nbytes:
        raise StoreError(f"store returned {len(data)} bytes for a {meta.nbytes}-byte tensor")
    return np.frombuffer(data, dtype=meta.dtype.numpy).reshape(meta.shape)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def error_text(exc: ResponseError) -> str:
    """A Redis error reply as text (redis-py drops the leading 'ERR ')."""
    return str(exc)


def translate(exc: ResponseError, key: str | None = None) -> StoreError:
    """Maps an error reply to the error tree, keeping its words."""
    text = error_text(exc)
    where = f" (key {key!r})" if key is not None and key not in text else ""
    if isinstance(exc, OutOfMemoryError):
        return StoreFull(f"the store is at its memory limit (maxmemory) and refused the write{where}: {text}")
    if text.startswith("WRONGTYPE"):
        return WrongType(text + where)
    if "key is empty" in text or "does not exist" in text:
        return TensorNotFound(text + where)
    return StoreError(text + where)


class TensorWriter:
    """Fills a tensor piece by piece; see TensorStore.writer."""

    def __init__(self, store: "TensorStore", key: str, meta: TensorMeta) -> None:
        self._store = store
        self.key = key
        self.meta = meta

    async def write(self, offset: int, data: bytes | memoryview) -> None:
        await self._store._write_staging(self.key, offset, data)


class TensorStore(abc.ABC):
    """Named tensors in a Redis, and tensor work done there."""

    backend: ClassVar[str]

    def __init__(self, client: aioredis.Redis, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
            raise ConfigError(f"chunk_bytes must be an integer >= 1, not {chunk_bytes!r}")
        self.client = client
        self.chunk_bytes = chunk_bytes
        self._durability_lock = asyncio.Lock()
        self._timer: tuple[Clock, CommandObserver] | None = None

    def time_commands(self, clock: Clock, observe: CommandObserver) -> None:
        """From now on, tells observe(name, seconds) of every command sent
        through this store's call path (the plain backend's pipelines, SCAN
        and CONFIG GET are not timed; workers' commands are their own)."""
        self._timer = (clock, observe)

    @contextlib.contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        timer = self._timer
        if timer is None:
            yield
            return
        clock, observe = timer
        start = clock.monotonic()
        try:
            yield
        finally:
            observe(name, clock.monotonic() - start)

    # ---- lifecycle ----

    async def __aenter__(self) -> "TensorStore":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def ping(self) -> None:
        await self._call("PING")

    async def run_id(self) -> str:
        """The server's run id: a new one after every restart of the server."""
        info = await self._call("INFO", "server")  # redis-py parses it into a dict
        run_id = info.get("run_id") if isinstance(info, dict) else None
        if not run_id:
            raise StoreError("the store's INFO reply has no run_id")
        return str(run_id)

    async def memory_limit_bytes(self) -> int | None:
        """The server's maxmemory (None: it has none)."""
        info = await self._call("INFO", "memory")
        limit = int(info.get("maxmemory", 0)) if isinstance(info, dict) else 0
        return limit or None

    async def flush_to_disk(self) -> None:
        """Returns once everything written so far is fsynced to the append
        only file (when the store keeps one): a durability barrier, for
        writes that are about to be acknowledged. Redis has no fsync
        command; with appendfsync always a write is fsynced before its
        reply, and fsync covers the whole file, so one write under that
        policy is the barrier. A no-op under always, or without an AOF, or
        where CONFIG is not allowed."""
        async with self._durability_lock:
            try:
                config = await self.client.config_get("append*")
            except ResponseError:
                return  # CONFIG renamed or refused: not ours to tune
            if config.get("appendonly") != "yes" or config.get("appendfsync") == "always":
                return
            policy = config.get("appendfsync", "everysec")
            await self._call("CONFIG", "SET", "appendfsync", "always")
            try:
                await self._call("SET", DURABILITY_BARRIER_KEY, "1")
                await self._call("DEL", DURABILITY_BARRIER_KEY)
            finally:
                await self._call("CONFIG", "SET", "appendfsync", policy)

    # ---- tensors ----

    @abc.abstractmethod
    async def set(self, key: str, array: np.ndarray) -> None:
        """Stores an array as a tensor, replacing whatever the key held."""

    @abc.abstractmethod
    async def get(self, key: str) -> np.ndarray:
        """The tensor at key, as a read-only array."""

    @abc.abstractmethod
    async def meta(self, key: str) -> TensorMeta:
        """The tensor's dtype and shape, without its data."""

    @abc.abstractmethod
    async def create(self, key: str, dtype: DType, shape: Sequence[int]) -> None:
        """Stores a tensor of zeros."""

    @abc.abstractmethod
    async def write_chunk(self, key: str, offset: int, data: bytes | memoryview) -> None:
        """Writes bytes at a byte offset into an existing tensor."""

    @abc.abstractmethod
    async def read_chunk(self, key: str, offset: int, length: int) -> bytes:
        """Reads bytes at a byte offset of a tensor."""

    @abc.abstractmethod
    async def digest(self, key: str) -> str:
        """Hex SHA-256 of the tensor's raw bytes."""

    async def exists(self, key: str) -> bool:
        return bool(await self._call("EXISTS", key))

    async def copy(self, src: str, dst: str) -> bool:
        """dst becomes a copy of the tensor at src (replacing what dst held);
        False, with dst unchanged, when src holds nothing. Where the backend
        can, the copy shares src's bytes until one of them is written."""
        return bool(await self._call("COPY", src, dst, "REPLACE", key=src))

    async def delete(self, *keys: str) -> int:
        return int(await self._call("DEL", *keys)) if keys else 0

    @contextlib.asynccontextmanager
    async def writer(
        self, key: str, dtype: DType, shape: Sequence[int]
    ) -> AsyncIterator[TensorWriter]:
        """Fills a new tensor in pieces, for data that arrives in pieces.

        The pieces land in the store directly, never assembled here. The
        tensor appears at key only when the block ends without an error;
        if it raises, nothing at key changes.
        """
        meta = TensorMeta(dtype, check_shape(shape))
        staging = key + STAGING_SUFFIX + secrets.token_hex(8)
        await self._begin_staging(staging, meta)
        try:
            yield TensorWriter(self, staging, meta)
            await self._commit_staging(staging, key, meta)
        except BaseException:
            await self.delete(staging)
            raise

    async def _begin_staging(self, staging: str, meta: TensorMeta) -> None:
        await self.create(staging, meta.dtype, meta.shape)

    async def _write_staging(self, staging: str, offset: int, data: bytes | memoryview) -> None:
        await self.write_chunk(staging, offset, data)

    async def _commit_staging(self, staging: str, key: str, meta: TensorMeta) -> None:
        await self._call("RENAME", staging, key)

    # ---- records and key spaces (small hashes beside the tensors) ----

    async def read_fields(self, key: str) -> dict[str, str]:
        """The hash at key as text ({} when there is none)."""
        raw = await self._call("HGETALL", key, key=key)
        pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2])
        return {_text(k): _text(v) for k, v in pairs}

    async def write_fields(self, key: str, fields: Mapping[str, str]) -> None:
        """Sets fields of the hash at key (the others stay)."""
        if fields:
            await self._call("HSET", key, *(part for pair in fields.items() for part in pair), key=key)

    async def write_fields_if_run(self, key: str, run_id: str, fields: Mapping[str, str]) -> None:
        """write_fields, refused (StoreRestarted, nothing written) unless the
        store is still the server run run_id: a write that saw the store
        crash and come back (with whatever its disk held) never lands."""
        args = [part for pair in fields.items() for part in pair]
        try:
            with self._timed("EVAL"):
                await self.client.eval(_WRITE_IF_RUN, 1, key, run_id, *args)
        except ResponseError as exc:
            if error_text(exc).startswith(_RESTARTED_REPLY):
                raise StoreRestarted(f"the store restarted (it is no longer run {run_id})") from None
            raise translate(exc, key) from exc
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailable(f"the tensor store is unreachable: {exc}") from exc

    async def keys_matching(self, pattern: str) -> list[str]:
        """Every key matching a glob pattern (SCAN: never blocks the store);
        bytes that are not UTF-8 show as U+FFFD."""
        return [_text(key) for key in await self._scan(pattern)]

    async def delete_matching(self, pattern: str, keep: Callable[[str], bool] = lambda key: False) -> int:
        """Deletes every key matching pattern for which keep(key) is false
        (key as keys_matching shows it); returns how many."""
        doomed = [raw for raw in await self._scan(pattern) if not keep(_text(raw))]
        for start in range(0, len(doomed), _DELETE_BATCH):
            await self._call("DEL", *doomed[start : start + _DELETE_BATCH])
        return len(doomed)

    async def _scan(self, pattern: str) -> list[bytes]:
        try:
            return [key async for key in self.client.scan_iter(match=pattern, count=_SCAN_COUNT)]
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailable(f"the tensor store is unreachable: {exc}") from exc

    # ---- tensor work ----

    async def aggregate(
        self,
        dst: str,
        rule: str,
        inputs: Sequence[str],
        *,
        given: Mapping[Statistic, np.ndarray] | None = None,
        **options: object,
    ) -> tuple[int, ...] | None:
        """Aggregates the tensors at inputs into dst with a rule from
        spirtd.aggregation.RULES. Returns the inputs Krum chose (best first),
        None for other rules. dst is written whole or not at all.

        given holds whole-vector statistics the rule needs (Rule.needs), to
        use instead of computing them from the inputs: when the inputs hold
        one shard of the vectors, the sum of every shard's statistic(). A
        statistic the rule does not need, or of the wrong shape, is an
        AggregationError."""
        call = validate_call(rule, len(inputs), options)
        return await self._aggregate(dst, call, list(inputs), check_given(call, given))

    async def statistic(self, stat: Statistic, inputs: Sequence[str]) -> np.ndarray:
        """A whole-vector statistic (spirtd.aggregation.Statistic) of the
        tensors at inputs (all FLOAT or all DOUBLE, of one shape, finite),
        computed in the store, as a read-only float64 array: (n, n) for
        PAIRWISE_SQUARED_DISTANCES. Of the inputs' coordinates only: for
        tensors that hold one shard of the vectors, the shard's part, which
        summed over every shard is what aggregate() takes as given."""
        stat = find_statistic(stat)
        check_count(stat, len(inputs))
        value = await self._statistic(stat, list(inputs))
        value.flags.writeable = False
        return value

    @abc.abstractmethod
    async def _aggregate(
        self, dst: str, call: RuleCall, inputs: list[str], given: Statistics
    ) -> tuple[int, ...] | None: ...

    @abc.abstractmethod
    async def _statistic(self, stat: Statistic, inputs: list[str]) -> np.ndarray: ...

    @abc.abstractmethod
    async def sgd_step(
        self, param: str, grad: str, cfg: SgdConfig, *, buffer: str | None = None
    ) -> None:
        """param -= lr * update, torch.optim.SGD's rule; the momentum buffer
        (needed when cfg.momentum > 0) lives at key buffer."""

    @abc.abstractmethod
    async def adam_step(
        self, param: str, grad: str, cfg: AdamConfig, *, exp_avg: str, exp_avg_sq: str, step: str
    ) -> int:
        """One torch.optim.Adam (or AdamW) step; returns the new step count."""

    # ---- plumbing ----

    async def _call(self, *args: object, key: str | None = None) -> object:
        try:
            with self._timed(str(args[0]).upper()):
                return await self.client.execute_command(*args)
        except ResponseError as exc:
            raise translate(exc, key) from exc
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailable(f"the tensor store is unreachable: {exc}") from exc
