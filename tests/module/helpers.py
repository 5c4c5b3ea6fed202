"""Helpers shared by the spirt module's tests: numpy <-> AI_TENSOR, error
replies, key snapshots, module info."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import redis

from spirtd.store.server import StoreServerConfig, prepare
from tests.conftest import RedisProcess, allow_debug_command

# Every AI_TENSOR dtype and the numpy type of its raw little-endian bytes.
NP_DTYPES: dict[str, np.dtype] = {
    "FLOAT": np.dtype("<f4"),
    "DOUBLE": np.dtype("<f8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "BOOL": np.dtype("u1"),
}
FLOAT_DTYPES = ("FLOAT", "DOUBLE")
INT_DTYPES = tuple(d for d in NP_DTYPES if d not in FLOAT_DTYPES)

# How long a test waits for a background state change (an AOF rewrite, a job).
WAIT_TIMEOUT_S = 30.0
WAIT_POLL_S = 0.01


def dtype_name(arr: np.ndarray) -> str:
    for name, dt in NP_DTYPES.items():
        if name != "BOOL" and arr.dtype == dt:
            return name
    raise ValueError(f"no AI_TENSOR dtype for {arr.dtype}")


def random_array(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Random values over the whole range of an AI_TENSOR dtype."""
    dt = NP_DTYPES[dtype]
    if dtype == "BOOL":
        return rng.integers(0, 2, size=shape, dtype=np.uint8)
    if dtype in FLOAT_DTYPES:
        return (rng.standard_normal(shape) * 1e3).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)


def put(r: redis.Redis, key: str, arr: np.ndarray, dtype: str | None = None) -> None:
    """AI.TENSORSET key from a numpy array (BLOB)."""
    dtype = dtype or dtype_name(arr)
    data = np.ascontiguousarray(arr, dtype=NP_DTYPES[dtype])
    shape = data.shape or (1,)
    assert r.execute_command("AI.TENSORSET", key, dtype, *shape, "BLOB", data.tobytes()) in (
        b"OK",
        "OK",
        True,
    )


def get(r: redis.Redis, key: str) -> np.ndarray:
    """AI.TENSORGET key META BLOB as a numpy array of the right shape."""
    reply = r.execute_command("AI.TENSORGET", key, "META", "BLOB")
    dtype, shape, blob = reply[1].decode(), reply[3], reply[5]
    return np.frombuffer(blob, dtype=NP_DTYPES[dtype]).reshape(shape)


def meta(r: redis.Redis, key: str) -> tuple[str, list[int]]:
    reply = r.execute_command("AI.TENSORGET", key, "META")
    return reply[1].decode(), list(reply[3])


def error_of(r: redis.Redis, *args: Any) -> str:
    """The error reply a command gets (redis-py drops a leading "ERR ")."""
    with pytest.raises(redis.ResponseError) as info:
        r.execute_command(*args)
    return str(info.value)


def snapshot(r: redis.Redis, keys: list[str]) -> dict[str, bytes | None]:
    """DUMP of each key (None when absent): equal snapshots, equal values."""
    return {k: r.dump(k) for k in keys}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(r: redis.Redis, key: str) -> str:
    reply = r.execute_command("SPIRT.DIGEST", key)
    return reply.decode() if isinstance(reply, bytes) else reply


def spirt_info(r: redis.Redis) -> dict[str, int]:
    """The module's INFO fields without the spirt_ prefix."""
    info = r.info("spirt")
    return {k.removeprefix("spirt_"): int(v) for k, v in info.items() if k.startswith("spirt_")}


def jobs_done(r: redis.Redis) -> int:
    """Jobs the pool finished. Counted after the job's client was released,
    so it may lag a reply by a moment: wait for it, do not assert it."""
    return spirt_info(r)["jobs_done"]


def jobs_queued(r: redis.Redis) -> int:
    """Jobs sent to the pool, counted before the command returns: whether a
    command ran on the pool or inline shows here at once."""
    return spirt_info(r)["jobs_queued"]


def wait_until(predicate, what: str, timeout_s: float = WAIT_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(WAIT_POLL_S)


def add_module_args(conf_path: Path, *args: str) -> None:
    """Appends load arguments to the loadmodule line of a redis.conf."""
    lines = conf_path.read_text().splitlines()
    out = []
    for line in lines:
        if line.startswith("loadmodule "):
            line = " ".join([line, *args])
        out.append(line)
    conf_path.write_text("\n".join(out) + "\n")


@contextlib.contextmanager
def running_server(inline_bytes: int | None = None, **cfg_kwargs: Any) -> Iterator[RedisProcess]:
    """A server for a whole test file: start_redis's behaviour (a server
    that exits with an error fails the test) without its per-test scope."""
    path = Path(tempfile.mkdtemp(prefix="spm-", dir="/tmp"))
    cfg_kwargs.setdefault("persistence", "none")
    cfg = StoreServerConfig(data_dir=path / "node", **cfg_kwargs)
    prepared = prepare(cfg)
    allow_debug_command(cfg.conf_path, Path(prepared.argv[0]))
    server = RedisProcess(cfg=cfg, prepared=prepared)
    if inline_bytes is not None:
        add_module_args(cfg.conf_path, "INLINE_BYTES", str(inline_bytes))
    server.start()
    try:
        yield server
    finally:
        code = server.stop()
        log = server.log_tail()
        shutil.rmtree(path, ignore_errors=True)
        if code not in (0, -signal.SIGKILL):
            pytest.fail(f"shared redis-server exited with {code}:\n{log}")


def check_alive(server: RedisProcess) -> None:
    if server.proc is None or server.proc.poll() is not None:
        pytest.fail(f"redis-server is down:\n{server.log_tail()}")
