"""The daemon's glue between jobs and the other members: the RoundPeers the
runner uses (the exchange driver, and fetching a version over gRPC), the
JobReplicas the job manager uses (a submit and a cancel reach every live
member), and the JobReplication server that takes them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection

import grpc

from spirtd.api.spirt.v1 import gradients_pb2 as pb
from spirtd.api.spirt.v1 import gradients_pb2_grpc
from spirtd.errors import ExchangeError, JobNotFound, SpirtError, VersionMoved
from spirtd.daemon.exchange_grpc import GrpcExchangeTransport
from spirtd.exchange.attempt import GlobalAggregate, LocalAggregate
from spirtd.exchange.config import RoundSettings
from spirtd.exchange.driver import ExchangeDriver
from spirtd.exchange.messages import AttemptKey
from spirtd.jobs.manager import JobManager
from spirtd.jobs.records import JobRecord, record_to_json
from spirtd.membership.state import MembershipState
from spirtd.rpc.guard import Guard
from spirtd.rpc.server import ChannelPool
from spirtd.store.api import DType, TensorStore

_log = logging.getLogger("spirtd.cluster")
# How long a member has to take an offered job (its record fsynced) or a cancel.
REPLICATION_TIMEOUT_S = 30.0


class AliveMembers:
    """The exchange's MembershipView of the daemon's membership."""

    def __init__(self, me: str, state: Callable[[], MembershipState | None]) -> None:
        self._me = me
        self._state = state

    def alive(self) -> Collection[str]:
        state = self._state()
        if state is None:
            return {self._me}
        return {m.id for m in state.members() if m.state.counts} | {self._me}  # suspects may be alive

    def address(self, member: str) -> str | None:
        state = self._state()
        found = state.member(member) if state is not None else None
        return found.address if found is not None else None


class ClusterPeers:
    """RoundPeers: the exchange driver's rounds, and versions fetched from
    other members into this peer's store."""

    solo = False

    def __init__(self, driver: ExchangeDriver, transport: GrpcExchangeTransport, store: TensorStore) -> None:
        self.me = driver.me
        self._driver = driver
        self._transport = transport
        self._store = store

    async def agree(self, job: str, round_number: int, state: str, previous: Collection[str], n_elements: int,
                    scratch: str, settings: RoundSettings, on_note: Callable[[str], None], *,
                    fresh: bool = False) -> AttemptKey:  # fmt: skip
        return await self._driver.agree(job, round_number, state, previous, n_elements, scratch, settings, on_note,
                                        fresh=fresh)  # fmt: skip

    async def exchange(self, job: str, key: AttemptKey, local: LocalAggregate) -> GlobalAggregate:
        return await self._driver.exchange(job, key, local)

    async def commit(self, job: str, key: AttemptKey, state: str) -> tuple[str, ...]:
        return await self._driver.commit(job, key, state)

    def end(self, job: str) -> None:
        self._driver.end(job)

    async def fetch(self, job: str, source: str, round_number: int,
                    land: Callable[[str], Awaitable[str]]) -> dict[str, str]:  # fmt: skip
        reply = await self._transport.fetch_version(source, job)
        check_version_round(source, job, held=reply.round, wanted=round_number)
        for name in reply.tensors:
            await self._fetch_tensor(job, source, round_number, name, await land(name))
        return dict(reply.progress)

    async def _fetch_tensor(self, job: str, source: str, round_number: int, name: str, key: str) -> None:
        chunks = self._transport.fetch_tensor(source, job, round_number, name).__aiter__()
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            raise ExchangeError(f"{source} sent nothing of tensor {name}") from None
        try:
            dtype = DType(first.header.dtype)
        except ValueError:
            raise ExchangeError(f"{source} sent tensor {name} of unknown dtype {first.header.dtype[:20]!r}") from None
        async with self._store.writer(key, dtype, tuple(first.header.shape)) as writer:
            await writer.write(first.offset, first.data)
            async for chunk in chunks:
                await writer.write(chunk.offset, chunk.data)


def check_version_round(source: str, job: str, *, held: int, wanted: int) -> None:
    """VersionMoved for a source at another round than the one asked for:
    a race either way (ask another, or again), no fault of the source's.
    One ahead went on meanwhile; one behind reported the round's digest but
    has not committed it yet (its version moves at the commit)."""
    if held > wanted:
        raise VersionMoved(f"{source} went on to round {held} of job {job}, past {wanted}")
    if held < wanted:
        raise VersionMoved(f"{source} holds round {held} of job {job}: it has not committed round {wanted} yet")


class GrpcJobReplicas:
    """JobReplicas over the spirt.v1.JobReplication service."""

    def __init__(self, me: str, channels: ChannelPool, members: AliveMembers) -> None:
        self._me = me
        self._channels = channels
        self._members = members

    def members(self) -> list[str]:
        return sorted(self._members.alive())

    def _stubs(self) -> dict[str, gradients_pb2_grpc.JobReplicationStub]:
        out = {}
        for member in sorted(self._members.alive()):
            address = self._members.address(member)
            if member != self._me and address is not None:
                out[member] = gradients_pb2_grpc.JobReplicationStub(self._channels.get(address, member))
        return out

    async def offer(self, record: JobRecord) -> dict[str, str]:
        request = pb.JobOffer(sender=self._me, record_json=record_to_json(record))
        return await self._everywhere(lambda stub: stub.Offer(request, timeout=REPLICATION_TIMEOUT_S))

    async def offer_to(self, member: str, records: list[JobRecord]) -> None:
        """Gives a member that (re)joined the jobs it may not know."""
        stub = self._stubs().get(member)
        for record in records if stub is not None else ():
            try:
                await stub.Offer(pb.JobOffer(sender=self._me, record_json=record_to_json(record)),
                                 timeout=REPLICATION_TIMEOUT_S)  # fmt: skip
            except grpc.aio.AioRpcError as exc:
                _log.warning("could not give job %s to %s: %s", record.id, member, exc.details())

    async def cancel(self, job_id: str) -> None:
        request = pb.JobCancel(sender=self._me, job=job_id)
        failed = await self._everywhere(lambda stub: stub.Cancel(request, timeout=REPLICATION_TIMEOUT_S))
        for member, why in failed.items():
            _log.warning("could not cancel job %s on %s: %s", job_id, member, why)

    async def _everywhere(self, call) -> dict[str, str]:
        stubs = self._stubs()

        async def one(member: str, stub) -> tuple[str, str | None]:
            try:
                await call(stub)
                return member, None
            except grpc.aio.AioRpcError as exc:
                return member, f"{exc.code().name}: {exc.details()}"

        results = await asyncio.gather(*(one(m, s) for m, s in stubs.items()))
        return {member: why for member, why in results if why is not None}


class JobReplicationService(gradients_pb2_grpc.JobReplicationServicer):
    def __init__(self, jobs: Callable[[], JobManager | None], guard: Guard) -> None:
        self._jobs = jobs
        self._guard = guard

    async def _manager(self, context) -> JobManager:
        jobs = self._jobs()
        if jobs is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this peer's jobs have not started")
        return jobs

    async def Offer(self, request, context):
        await self._guard.check_sender(request.sender, context)
        jobs = await self._manager(context)
        try:
            known = await jobs.adopt(request.record_json)
        except SpirtError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the job cannot run here: {exc}")
        return pb.JobOfferReply(known=known)

    async def Cancel(self, request, context):
        await self._guard.check_sender(request.sender, context)
        jobs = await self._manager(context)
        try:
            phase = await jobs.cancel(request.job, everywhere=False)
        except JobNotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return pb.JobCancelReply(phase=phase.value)

    async def List(self, request, context):
        await self._guard.check_sender(request.sender, context)
        jobs = await self._manager(context)
        return pb.JobListReply(record_json=[record_to_json(r) for r in jobs.unfinished()])

