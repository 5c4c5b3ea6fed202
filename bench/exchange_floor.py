"""What bench/exchange.py's spirtd round would cost with less of spirtd: the
floors its table sets beside gloo.

  wire peers: the same reduce-scatter and all-gather bytes between n
      processes over raw asyncio sockets on loopback, one connection per
      ordered pair, in chunks of the exchange's size; plain TCP, or TLS with
      the peers' certificates (mutual, as spirtd's); with sha256, every
      stream hashed by its sender before it goes and by its receiver as it
      comes (as spirtd's contribution header and chunk checks do). No gRPC,
      no store, no aggregation (an owner sends its own part back as the
      result).
  MemoryStore: the tensor store's calls the exchange makes, on numpy arrays
      in this process: spirtd's driver, streams and gRPC without Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import statistics
import struct
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np

# A stream's frame: stage (0 scatter, 1 gather), round, sender, byte size, SHA-256.
FRAME = struct.Struct("!BIH Q 32s")
CONNECT_TRIES = 200
CONNECT_RETRY_S = 0.05
READ_BYTES = 1 << 20


def _contexts(certs_dir: Path, me: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts with me's certificate, each requiring the other's."""
    contexts = []
    for purpose in (ssl.Purpose.CLIENT_AUTH, ssl.Purpose.SERVER_AUTH):
        context = ssl.create_default_context(purpose, cafile=str(certs_dir / "ca.crt"))
        context.load_cert_chain(str(certs_dir / f"{me}.crt"), str(certs_dir / f"{me}.key"))
        context.verify_mode = ssl.CERT_REQUIRED
        contexts.append(context)
    return contexts[0], contexts[1]


async def wire_peer(index: int, n: int, m: int, rounds: int, ports: list[int], certs_dir: Path, tls: bool,
                    sha256: bool, chunk_bytes: int) -> dict:  # fmt: skip
    server_context, client_context = _contexts(certs_dir, f"peer{index}") if tls else (None, None)
    local = np.random.default_rng(index).standard_normal(m).astype(np.float32)
    bounds = [(m * i // n, m * (i + 1) // n) for i in range(n)]
    arrived: dict[tuple[int, int, int], asyncio.Event] = {}
    serving: set[asyncio.Task] = set()

    def event(stage: int, r: int, sender: int) -> asyncio.Event:
        return arrived.setdefault((stage, r, sender), asyncio.Event())

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                stage, r, sender, nbytes, digest = FRAME.unpack(await reader.readexactly(FRAME.size))
                check = hashlib.sha256() if sha256 else None
                left = nbytes
                while left:
                    data = await reader.read(min(left, READ_BYTES))
                    if not data:
                        raise ConnectionError("the stream ended early")
                    if check is not None:
                        check.update(data)
                    left -= len(data)
                if check is not None and check.digest() != digest:
                    raise ValueError("a stream's SHA-256 is wrong")
                event(stage, r, sender).set()
        writer.close()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        serving.add(asyncio.ensure_future(serve(reader, writer)))  # cancelled and awaited below

    server = await asyncio.start_server(accept, "127.0.0.1", ports[index], ssl=server_context)
    writers = {}
    for peer in (p for p in range(n) if p != index):
        for _ in range(CONNECT_TRIES):
            try:
                _, writers[peer] = await asyncio.open_connection(
                    "127.0.0.1", ports[peer], ssl=client_context, server_hostname=f"peer{peer}" if tls else None)
                break
            except OSError:
                await asyncio.sleep(CONNECT_RETRY_S)
        else:
            raise ConnectionError(f"peer{peer} never listened")

    async def send(to: int, stage: int, r: int, data: memoryview) -> None:
        digest = hashlib.sha256(data).digest() if sha256 else bytes(32)
        writer = writers[to]
        writer.write(FRAME.pack(stage, r, index, len(data), digest))
        for offset in range(0, len(data), chunk_bytes):
            writer.write(data[offset : offset + chunk_bytes])
            await writer.drain()

    view = memoryview(local).cast("B")
    parts = [view[a * 4 : b * 4] for a, b in bounds]
    others = [p for p in range(n) if p != index]
    times = []
    for r in range(rounds + 1):
        started = time.perf_counter()
        if r == 1:
            cpu = time.process_time()
        await asyncio.gather(*(send(p, 0, r, parts[p]) for p in others))
        await asyncio.gather(*(event(0, r, p).wait() for p in others))
        await asyncio.gather(*(send(p, 1, r, parts[index]) for p in others))
        await asyncio.gather(*(event(1, r, p).wait() for p in others))
        if r:
            times.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu) / rounds
    await asyncio.sleep(1.0)  # let the others finish their last round
    for writer in writers.values():
        writer.close()
    for task in serving:
        task.cancel()
    await asyncio.gather(*serving, return_exceptions=True)
    server.close()
    return {"median_s": statistics.median(times), "cpu_s": cpu, "store_cpu_s": 0.0}


class MemoryStore:
    """The calls of the tensor store that bench/exchange.py's rounds make,
    on float32 arrays in this process (aggregate: the rule's mean, weighted
    as the exchange asks)."""

    def __init__(self) -> None:
        self._tensors: dict[str, np.ndarray] = {}

    async def set(self, key: str, array: np.ndarray) -> None:
        self._tensors[key] = np.array(array, dtype=np.float32)

    async def create(self, key: str, dtype: object, shape: Sequence[int]) -> None:
        self._tensors[key] = np.empty(shape, np.float32)

    @contextlib.asynccontextmanager
    async def writer(self, key: str, dtype: object, shape: Sequence[int]) -> AsyncIterator["MemoryStore"]:
        staging = f"{key}:staging"
        await self.create(staging, dtype, shape)
        try:
            yield _Writer(self, staging)
            self._tensors[key] = self._tensors.pop(staging)
        except BaseException:
            self._tensors.pop(staging, None)
            raise

    async def write_chunk(self, key: str, offset: int, data: bytes | memoryview) -> None:
        memoryview(self._tensors[key]).cast("B")[offset : offset + len(data)] = data

    async def read_chunk(self, key: str, offset: int, length: int) -> bytes:
        return memoryview(self._tensors[key]).cast("B")[offset : offset + length].tobytes()

    async def aggregate(self, dst: str, rule: str, inputs: Sequence[str], *, given: object = None,
                        **options: object) -> None:  # fmt: skip
        weights = [float(w) for w in options.get("weights") or [1.0] * len(inputs)]
        total = np.zeros_like(self._tensors[inputs[0]])
        for weight, key in zip(weights, inputs):
            total += np.float32(weight / sum(weights)) * self._tensors[key]
        self._tensors[dst] = total

    async def delete_matching(self, pattern: str) -> int:
        prefix = pattern.rstrip("*")
        doomed = [k for k in self._tensors if k.startswith(prefix)]
        for key in doomed:
            del self._tensors[key]
        return len(doomed)

    async def aclose(self) -> None:
        self._tensors.clear()


class _Writer:
    def __init__(self, store: MemoryStore, key: str) -> None:
        self._store, self._key = store, key

    async def write(self, offset: int, data: bytes | memoryview) -> None:
        await self._store.write_chunk(self._key, offset, data)
