"""The exchange over gRPC: the client side (GrpcExchangeTransport) and the
spirt.v1.GradientExchange server, which hands requests to the exchange
driver (agreement messages, contribution streams) and serves committed
versions to peers that resync (a VersionSource).

A refused contribution ends its call with FAILED_PRECONDITION and details
"<refusal kind>: <reason>", which the client turns back into
ContributionRefused. Every request's sender must be the caller's
certificate (the guard admits peers only to this service).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import grpc

from spirtd.api.spirt.v1 import gradients_pb2 as pb
from spirtd.api.spirt.v1 import gradients_pb2_grpc
from spirtd.errors import ContributionRefused, JobNotFound, SpirtError, TransportError, WireError
from spirtd.exchange.messages import AttemptKey, Message, Partial, Propose, Report
from spirtd.exchange.streams import ContributionHeader, Stage
from spirtd.exchange.transport import Chunks, ExchangeInbound
from spirtd.rpc.guard import Guard, caller
from spirtd.rpc.server import ChannelPool

_log = logging.getLogger("spirtd.exchange")
PUSH_TENSOR = "/spirt.v1.GradientExchange/PushTensor"
# TensorChunk's offset (3, varint) and data (4, length-delimited) keys, as protobuf writes them.
_OFFSET_KEY, _DATA_KEY = bytes([3 << 3 | 0]), bytes([4 << 3 | 2])
_STAGES = {Stage.SCATTER: pb.Contribution.SCATTER, Stage.GATHER: pb.Contribution.GATHER}
_FROM_STAGE = {v: k for k, v in _STAGES.items()}


class VersionSource(Protocol):
    """A job's newest committed version, for peers that resync."""

    async def version(self, job: str) -> tuple[int, str, dict[str, str], list[str]]:
        """(round, state digest, progress fields, tensor names); JobNotFound if none."""
        ...

    def read(self, job: str, round_number: int, name: str) -> AsyncIterator[tuple[str, tuple[int, ...], int, bytes]]:
        """(dtype, shape, offset, data) pieces of one tensor of that version."""
        ...


# ---- wire ----

def key_to_wire(key: AttemptKey) -> pb.AttemptKey:
    return pb.AttemptKey(round=key.round, attempt=key.attempt, participants=list(key.participants))


def key_from_wire(key: pb.AttemptKey) -> AttemptKey:
    return AttemptKey(key.round, key.attempt, tuple(key.participants))


def message_to_wire(message: Message) -> pb.AgreementMessage:
    if isinstance(message, Partial):
        return pb.AgreementMessage(sender=message.sender, job=message.job, kind=pb.AgreementMessage.PARTIAL,
                                   key=key_to_wire(message.key), shard=message.shard, statistic=message.statistic,
                                   data=message.data)  # fmt: skip
    kind = pb.AgreementMessage.PROPOSE if isinstance(message, Propose) else pb.AgreementMessage.REPORT
    again = isinstance(message, Report) and message.again
    return pb.AgreementMessage(sender=message.sender, job=message.job, kind=kind, key=key_to_wire(message.key),
                               state=message.state, again=again)  # fmt: skip


def message_from_wire(m: pb.AgreementMessage) -> Message:
    key = key_from_wire(m.key)
    if m.kind == pb.AgreementMessage.PROPOSE:
        return Propose(m.sender, m.job, key, m.state)
    if m.kind == pb.AgreementMessage.REPORT:
        return Report(m.sender, m.job, key, m.state, again=m.again)
    if m.kind == pb.AgreementMessage.PARTIAL:
        return Partial(m.sender, m.job, key, m.shard, m.statistic, m.data)
    raise WireError(f"an agreement message of unknown kind {m.kind}")


def header_to_wire(h: ContributionHeader) -> pb.TensorChunk:
    return pb.TensorChunk(
        ref=pb.TensorRef(job=h.job, round=h.key.round, name="contribution"),
        header=pb.TensorHeader(dtype=h.dtype, shape=[h.n_elements], nbytes=h.nbytes, sha256=h.sha256),
        contribution=pb.Contribution(job=h.job, key=key_to_wire(h.key), sender=h.sender, stage=_STAGES[h.stage],
                                     shard=h.shard, start=h.start, n_elements=h.n_elements, samples=h.samples,
                                     loss=h.loss, contributors=list(h.contributors)),
    )  # fmt: skip


def header_from_wire(chunk: pb.TensorChunk) -> ContributionHeader:
    if not chunk.HasField("contribution") or not chunk.HasField("header"):
        raise WireError("a contribution stream must start with its header")
    c, t = chunk.contribution, chunk.header
    if c.stage not in _FROM_STAGE:
        raise WireError(f"a contribution of unknown stage {c.stage}")
    return ContributionHeader(job=c.job, key=key_from_wire(c.key), sender=c.sender, shard=c.shard, start=c.start,
                              n_elements=c.n_elements, dtype=t.dtype, nbytes=t.nbytes, sha256=t.sha256,
                              stage=_FROM_STAGE[c.stage], samples=c.samples, loss=c.loss,
                              contributors=tuple(c.contributors))  # fmt: skip


def chunk_to_wire(offset: int, data: bytes | memoryview) -> bytes:
    """A TensorChunk with offset and data, serialized: the bytes
    pb.TensorChunk(offset=offset, data=data).SerializeToString() makes, with
    one copy of data (the message and its serialization would make two)."""
    head = bytearray()
    if offset:
        head += _OFFSET_KEY + _varint(offset)
    if len(data):
        head += _DATA_KEY + _varint(len(data))
    return b"".join((head, data))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _serialized(request: bytes) -> bytes:
    return request


# ---- client ----

class GrpcExchangeTransport:
    """resolve(peer id) is the member's address (None: not a member)."""

    def __init__(self, me: str, channels: ChannelPool, resolve: Callable[[str], str | None]) -> None:
        self._me = me
        self._channels = channels
        self._resolve = resolve

    def _channel(self, peer: str) -> grpc.aio.Channel:
        address = self._resolve(peer)
        if address is None:
            raise TransportError(f"{peer} is not a member")
        return self._channels.get(address, peer)

    def _stub(self, peer: str) -> gradients_pb2_grpc.GradientExchangeStub:
        return gradients_pb2_grpc.GradientExchangeStub(self._channel(peer))

    async def send(self, to: str, message: Message) -> None:
        try:
            await self._stub(to).Agree(message_to_wire(message))
        except grpc.aio.AioRpcError as exc:
            raise TransportError(f"{to}: {exc.code().name}: {exc.details()}") from exc

    async def push(self, to: str, header: ContributionHeader, chunks: Chunks) -> None:
        async def requests() -> AsyncIterator[bytes]:  # serialized TensorChunks
            yield header_to_wire(header).SerializeToString()
            async for offset, data in chunks:
                yield chunk_to_wire(offset, data)

        try:
            push = self._channel(to).stream_unary(PUSH_TENSOR, request_serializer=_serialized,
                                                  response_deserializer=pb.PushTensorResponse.FromString)  # fmt: skip
            await push(requests())
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                kind, _, reason = (exc.details() or "").partition(": ")
                raise ContributionRefused(f"{to} refused the contribution: {reason or kind}", kind) from exc
            raise TransportError(f"{to}: {exc.code().name}: {exc.details()}") from exc

    async def fetch_version(self, peer: str, job: str) -> pb.VersionReply:
        try:
            return await self._stub(peer).Version(pb.VersionRequest(sender=self._me, job=job))
        except grpc.aio.AioRpcError as exc:
            raise TransportError(f"{peer}: {exc.code().name}: {exc.details()}") from exc

    async def fetch_tensor(self, peer: str, job: str, round_number: int, name: str) -> AsyncIterator[pb.TensorChunk]:
        request = pb.FetchTensorRequest(sender=self._me, ref=pb.TensorRef(job=job, round=round_number, name=name))
        try:
            async for chunk in self._stub(peer).FetchTensor(request):
                yield chunk
        except grpc.aio.AioRpcError as exc:
            raise TransportError(f"{peer}: {exc.code().name}: {exc.details()}") from exc


# ---- server ----

class GradientExchangeService(gradients_pb2_grpc.GradientExchangeServicer):
    def __init__(self, inbound: Callable[[], ExchangeInbound | None], versions: Callable[[], VersionSource | None],
                 guard: Guard) -> None:  # fmt: skip
        self._inbound = inbound
        self._versions = versions
        self._guard = guard

    async def _driver(self, context) -> ExchangeInbound:
        inbound = self._inbound()
        if inbound is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this peer's exchange has not started")
        return inbound

    async def Agree(self, request, context):
        await self._guard.check_sender(request.sender, context)
        try:
            message = message_from_wire(request)
        except WireError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        await (await self._driver(context)).on_message(request.sender, message)
        return pb.AgreementAck()

    async def PushTensor(self, request_iterator, context):
        requests = self._guard.readable(request_iterator, context).__aiter__()
        try:
            first = await requests.__anext__()
        except StopAsyncIteration:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "an empty contribution stream")
        try:
            header = header_from_wire(first)
        except WireError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        identity = caller()
        who = identity.name if identity is not None else header.sender  # --insecure: nobody to check

        async def chunks() -> Chunks:
            if first.data:
                yield first.offset, first.data
            async for chunk in requests:
                yield chunk.offset, chunk.data

        refusal = await (await self._driver(context)).on_push(who, header, chunks())
        if refusal is not None:
            if context.cancelled() or context.done():
                return pb.PushTensorResponse()  # the sender hung up: nobody to tell
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{refusal.kind.value}: {refusal.reason}")
        return pb.PushTensorResponse(received_bytes=header.nbytes)

    async def Version(self, request, context):
        await self._guard.check_sender(request.sender, context)
        source = self._versions()
        if source is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this peer serves no versions yet")
        try:
            number, state, progress, tensors = await source.version(request.job)
        except JobNotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return pb.VersionReply(round=number, state=state, progress=progress, tensors=tensors)

    async def FetchTensor(self, request, context):
        await self._guard.check_sender(request.sender, context)
        source = self._versions()
        if source is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this peer serves no versions yet")
        first = True
        try:
            async for dtype, shape, offset, data in source.read(request.ref.job, request.ref.round, request.ref.name):
                chunk = pb.TensorChunk(offset=offset, data=data)
                if first:
                    chunk.ref.CopyFrom(request.ref)
                    chunk.header.CopyFrom(pb.TensorHeader(dtype=dtype, shape=list(shape)))
                    first = False
                yield chunk
        except JobNotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except SpirtError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot read the version: {exc}")
